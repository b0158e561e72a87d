"""Every model has an admin page that renders, in French, with maps for geometries."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from tests.factories import UserFactory, ZoneFactory

# Every model of the project's apps, found rather than listed: a new model without an admin
# page fails here.
MODELS = [model for app in ("maraudes", "zones") for model in apps.get_app_config(app).get_models()]


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
