import pytest
from django.db import connection


@pytest.mark.django_db
def test_it_runs_on_postgis():
    with connection.cursor() as cur:
        cur.execute("SELECT postgis_version()")
        (version,) = cur.fetchone()
    assert version.startswith("3")
