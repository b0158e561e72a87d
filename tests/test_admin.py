"""Every model has an admin page that renders, in French, with maps for geometries."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from maraudes.models import Encounter, Event, Membership, Organization, Position, Shift, Team
from tests.factories import UserFactory, ZoneFactory
from zones.models import Assignment, CoveragePiece, Zone, ZoneDayCoverage, ZonePresence

MODELS = [
    Organization, Team, Membership, Shift, Position, Encounter, Event,
    Zone, Assignment, CoveragePiece, ZoneDayCoverage, ZonePresence,
]  # fmt: skip


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
    for label in ("Structures", "Équipes", "Maraudes", "Points GPS", "Rencontres", "Affectations"):
        assert label in page, label


def test_a_zone_is_edited_on_a_map(admin_client):
    zone = ZoneFactory()
    page = admin_client.get(reverse("admin:zones_zone_change", args=[zone.pk])).content.decode()
    assert "leaflet" in page.lower()
