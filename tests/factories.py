"""Factories with deterministic geometry: fixed origins in Lambert-93, tiles from a helper."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.gis.geos import MultiPolygon, Point, Polygon
from django.utils import timezone

from maraudes.models import Membership, Organization, Role, Shift, Team, TeamMode
from maraudes.services import tracker_token_new
from zones.models import Zone

PARIS = ZoneInfo("Europe/Paris")
# Notre-Dame's parvis in Lambert-93, metres: the origin of every test tile.
ORIGIN_X, ORIGIN_Y = 652_000.0, 6_862_000.0


def tile(col: int = 0, row: int = 0, size: float = 1000.0) -> MultiPolygon:
    """A square of `size` metres, the (col, row)-th east/north of the origin."""
    x0, y0 = ORIGIN_X + col * size, ORIGIN_Y + row * size
    poly = Polygon.from_bbox((x0, y0, x0 + size, y0 + size))
    return MultiPolygon(poly, srid=settings.SRID)


def l93(dx: float = 0.0, dy: float = 0.0) -> Point:
    return Point(ORIGIN_X + dx, ORIGIN_Y + dy, srid=settings.SRID)


def paris_time(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("secret-pass-123")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Association {n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Équipe {n}")
    mode = TeamMode.FOOT


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.COORDINATOR


def user_with_role(role: str, *, team: Team | None = None, username: str | None = None):
    user = UserFactory(username=username or f"{role}-{UserFactory._meta.model.objects.count()}")
    org = team.organization if team else OrganizationFactory()
    MembershipFactory(user=user, organization=org, role=role, team=team)
    return user


class ShiftFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shift

    team = factory.SubFactory(TeamFactory)
    started_at = factory.LazyFunction(lambda: paris_time(2026, 11, 20, 20, 0))
    tracker_token_hash = factory.LazyFunction(lambda: tracker_token_new()[1])


def tracked_shift(**fields) -> tuple[str, Shift]:
    """A shift that started an hour ago and the tracker token it was given (only its hash is
    stored, so the token is known here only)."""
    token, token_hash = tracker_token_new()
    fields.setdefault("started_at", timezone.now() - timedelta(hours=1))
    return token, ShiftFactory(tracker_token_hash=token_hash, **fields)


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone

    code = factory.Sequence(lambda n: f"Z{n}")
    name = factory.Sequence(lambda n: f"Secteur {n}")
    kind = "sector"
    geom = factory.Sequence(lambda n: tile(n % 10, n // 10))
