from django.contrib import admin
from django.db.models import Count, Max, Min
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from leaflet.admin import LeafletGeoAdmin

from maraudes.models import (
    CoverageBacklog,
    Encounter,
    Event,
    Membership,
    Organization,
    Position,
    Shift,
    Team,
)


class ReadOnlyAdminMixin:
    """For computed or journal tables: browse them, never edit them by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "mode", "coverage_radius_m", "color", "is_active"]
    list_filter = ["organization", "mode", "is_active"]
    search_fields = ["name", "organization__name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "team"]
    list_filter = ["role", "organization"]
    autocomplete_fields = ["user", "team"]


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    list_display = ["team", "started_at", "ended_at", "closed_automatically"]
    list_filter = ["team__organization", "closed_automatically"]
    date_hierarchy = "started_at"
    readonly_fields = ["tracker_token_hash", "fixes"]
    list_select_related = ["team", "team__organization"]

    @admin.display(description=_("points GPS"))
    def fixes(self, shift: Shift) -> str:
        """How many fixes the shift holds, and over which hours: raw fixes have no admin page
        of their own (their key, (shift, recorded_at), is one Django's admin does not take),
        and a worker's positions are read through the shift's track, by those who may."""
        span = Position.objects.filter(shift=shift).aggregate(
            count=Count("recorded_at"), first=Min("recorded_at"), last=Max("recorded_at")
        )
        if not span["count"]:
            return "0"
        first, last = (localtime(span[key]).strftime("%Y-%m-%d %H:%M") for key in ("first", "last"))
        return f"{span['count']} ({first} – {last})"


@admin.register(Encounter)
class EncounterAdmin(LeafletGeoAdmin):
    list_display = ["seen_at", "shift", "people_count"]
    date_hierarchy = "seen_at"
    raw_id_fields = ["shift"]
    list_select_related = ["shift", "shift__team"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only journal of what live clients were sent."""

    list_display = ["seq", "created_at", "type", "team", "to_team"]
    list_filter = ["type"]
    date_hierarchy = "created_at"
    list_select_related = ["team"]
    show_full_result_count = False


@admin.register(CoverageBacklog)
class CoverageBacklogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Tracker points stored but not yet covered (zones.catchup drains them within seconds)."""

    list_display = ["shift", "recorded_at"]
    raw_id_fields = ["shift"]
    list_select_related = ["shift", "shift__team"]
    show_full_result_count = False
