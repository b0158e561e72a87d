from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from api import assignments, coverage, gpx, map_layers, reports, trackers, tracking, views

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("organizations/", views.OrganizationListCreateApi.as_view(), name="organizations"),
    path("teams/", views.TeamListCreateApi.as_view(), name="teams"),
    path("zones/", views.ZoneListApi.as_view(), name="zones"),
    path("shifts/", tracking.ShiftStartApi.as_view(), name="shift-start"),
    path("shifts/<int:shift_id>/", tracking.ShiftDetailApi.as_view(), name="shift-detail"),
    path("shifts/<int:shift_id>/end/", tracking.ShiftEndApi.as_view(), name="shift-end"),
    path("shifts/<int:shift_id>/track/", tracking.ShiftTrackApi.as_view(), name="shift-track"),
    path(
        "shifts/<int:shift_id>/positions/",
        tracking.PositionsRecordApi.as_view(),
        name="shift-positions",
    ),
    # GET: the map layer of encounters; POST: the phones' (api.encounters).
    path("encounters/", map_layers.EncountersApi.as_view(), name="encounters"),
    path("white-zones/", coverage.WhiteZonesApi.as_view(), name="white-zones"),
    path("coverage/", coverage.CoverageApi.as_view(), name="coverage"),
    path("staleness/", coverage.StalenessApi.as_view(), name="staleness"),
    path("assignments/", assignments.AssignmentListCreateApi.as_view(), name="assignments"),
    path(
        "assignments/conflicts/",
        assignments.AssignmentConflictsApi.as_view(),
        name="assignment-conflicts",
    ),
    path(
        "assignments/<int:assignment_id>/",
        assignments.AssignmentDeleteApi.as_view(),
        name="assignment-detail",
    ),
    path("live/teams/", map_layers.LiveTeamsApi.as_view(), name="live-teams"),
    # Phones (issue 5): background trackers, their setup card, GPX upload.
    path("track/", trackers.TrackerApi.as_view(), name="track"),
    # Trackers typed in by hand often lose the final slash, and a POST redirected by
    # APPEND_SLASH is a failure to them: the same endpoint answers without it.
    path("track", trackers.TrackerNoSlashApi.as_view(), name="track-no-slash"),
    path("track/setup/", trackers.TrackerSetupApi.as_view(), name="track-setup"),
    path("shifts/<int:shift_id>/gpx/", gpx.ShiftGpxApi.as_view(), name="shift-gpx"),
    # The planner's weekly report (issue 6).
    path("reports/weekly/", reports.WeeklyReportApi.as_view(), name="report-weekly"),
    path(
        "reports/weekly/white-zones/",
        reports.WeeklyWhiteZonesApi.as_view(),
        name="report-weekly-white-zones",
    ),
]
