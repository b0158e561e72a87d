from django.contrib import admin
from leaflet.admin import LeafletGeoAdmin

from zones.models import Assignment, Zone


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
