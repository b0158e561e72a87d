from django.contrib import admin
from leaflet.admin import LeafletGeoAdmin

from zones.models import Assignment, Zone, ZoneDayCoverage


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
class ZoneDayCoverageAdmin(LeafletGeoAdmin):
    """Read-only: computed from the fixes (coverage_rebuild recomputes it)."""

    list_display = ["day", "zone", "covered_m2", "updated_at"]
    list_filter = ["zone__kind"]
    date_hierarchy = "day"
    list_select_related = ["zone"]
    readonly_fields = ["zone", "day", "covered_m2", "shift_ids", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
