from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from api import coverage, encounters, tracking, views

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
    path("encounters/", encounters.EncounterCreateApi.as_view(), name="encounters"),
    path("white-zones/", coverage.WhiteZonesApi.as_view(), name="white-zones"),
    path("coverage/", coverage.CoverageApi.as_view(), name="coverage"),
    path("staleness/", coverage.StalenessApi.as_view(), name="staleness"),
]
