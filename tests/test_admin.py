"""Every model has an admin page that renders, in French, with maps for geometries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from maraudes.fixes import Fix
from maraudes.models import Position
from maraudes.services import positions_record
from tests.factories import ShiftFactory, UserFactory, ZoneFactory

# Every model of the project's apps, found rather than listed: a new model without an admin
# page fails here, unless it is named below with the reason.
WITHOUT_ADMIN = {
    # Keyed by (shift, recorded_at), which Django's admin does not take; the shift's page
    # tells how many fixes it holds and when.
    Position: "composite key",
}
MODELS = [
    model
    for app in ("maraudes", "zones")
    for model in apps.get_app_config(app).get_models()
    if model not in WITHOUT_ADMIN
]


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_model_has_an_admin_list(admin_client, model):
    assert admin.site.is_registered(model)
    meta = model._meta
    response = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200


def test_the_admin_speaks_french(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    for label in ("Structures", "Équipes", "Maraudes", "Rencontres", "Affectations"):
        assert label in page, label


def test_a_zone_is_edited_on_a_map(admin_client):
    zone = ZoneFactory()
    page = admin_client.get(reverse("admin:zones_zone_change", args=[zone.pk])).content.decode()
    assert "leaflet" in page.lower()


def test_models_without_admin_have_none():
    for model in WITHOUT_ADMIN:
        assert not admin.site.is_registered(model)


def test_a_shift_page_tells_its_fixes(admin_client):
    shift = ShiftFactory(started_at=datetime(2025, 1, 10, 20, 0, tzinfo=UTC))
    fixes = [
        Fix(t=shift.started_at + timedelta(minutes=m), lon=2.35, lat=48.85, accuracy=5)
        for m in (0, 5, 95)
    ]
    assert len(positions_record(shift=shift, fixes=fixes).accepted) == 3
    page = admin_client.get(reverse("admin:maraudes_shift_change", args=[shift.pk]))
    assert page.status_code == 200
    # Paris time (UTC+1 in January): 21:00 to 22:35.
    assert "3 (2025-01-10 21:00 – 2025-01-10 22:35)" in page.content.decode()
