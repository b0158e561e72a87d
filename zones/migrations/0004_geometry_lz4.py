"""Coverage geometries are compressed with lz4 instead of pglz when PostgreSQL has it: each
batch rewrites zone-days and weekly white parts of tens of kilobytes, and pglz compression was
about 5 % of the database's time while loading (perf, benchmark scenario); lz4 compresses and
decompresses several times faster. Values already stored keep pglz until they are rewritten.
A server built without lz4 keeps pglz, with a notice.
"""

from django.db import migrations

TABLES = ("zones_coveragepiece", "zones_zonedaycoverage", "zones_zoneweekwhite")


def _set(method: str) -> str:
    statements = "\n".join(
        f"  ALTER TABLE {table} ALTER COLUMN geom SET COMPRESSION {method};" for table in TABLES
    )
    return f"""
DO $$
BEGIN
{statements}
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
  RAISE NOTICE 'compression % is not available here: geometries keep the default', '{method}';
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("zones", "0003_zone_presence")]

    operations = [migrations.RunSQL(_set("lz4"), reverse_sql=_set("DEFAULT"))]
