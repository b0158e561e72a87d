from django.contrib import admin
from leaflet.admin import LeafletGeoAdmin

from maraudes.admin import ReadOnlyAdminMixin
from zones.models import (
    Assignment,
    CoveragePiece,
    Zone,
    ZoneDayCoverage,
    ZonePresence,
    ZoneWeekWhite,
)


@admin.register(Zone)
class ZoneAdmin(LeafletGeoAdmin):
    list_display = ["code", "name", "kind", "parent", "need_weight", "area_m2"]
    list_filter = ["kind"]
    search_fields = ["code", "name"]
    raw_id_fields = ["parent"]
    readonly_fields = ["area_m2"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["day", "zone", "team"]
    list_filter = ["day", "team"]
    autocomplete_fields = ["zone", "team"]
    date_hierarchy = "day"


@admin.register(ZoneDayCoverage)
class ZoneDayCoverageAdmin(ReadOnlyAdminMixin, LeafletGeoAdmin):
    """Read-only: computed from the fixes (coverage_rebuild recomputes it)."""

    list_display = ["day", "zone", "covered_m2", "updated_at"]
    list_filter = ["zone__kind"]
    date_hierarchy = "day"
    list_select_related = ["zone"]
    readonly_fields = ["zone", "day", "covered_m2", "shift_ids", "updated_at"]


@admin.register(CoveragePiece)
class CoveragePieceAdmin(ReadOnlyAdminMixin, LeafletGeoAdmin):
    """Read-only: what a shift covered on a day, batch by batch."""

    list_display = ["day", "shift", "created_at"]
    date_hierarchy = "day"
    raw_id_fields = ["shift"]
    list_select_related = ["shift", "shift__team"]


@admin.register(ZonePresence)
class ZonePresenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: computed from the fixes as they arrive (coverage_rebuild recomputes it)."""

    list_display = ["day", "hour", "zone", "shift", "seconds"]
    list_filter = ["zone__kind"]
    date_hierarchy = "day"
    list_select_related = ["zone", "shift", "shift__team"]
    raw_id_fields = ["zone", "shift"]
    readonly_fields = ["zone", "shift", "day", "hour", "seconds"]


@admin.register(ZoneWeekWhite)
class ZoneWeekWhiteAdmin(ReadOnlyAdminMixin, LeafletGeoAdmin):
    """Read-only: the white part of a zone over the 7 days ending on `last_day`, kept as
    pieces arrive (coverage_rebuild recomputes it)."""

    list_display = ["last_day", "zone", "white_m2", "updated_at"]
    list_filter = ["zone__kind"]
    date_hierarchy = "last_day"
    list_select_related = ["zone"]
    readonly_fields = ["zone", "last_day", "white_m2", "updated_at"]
