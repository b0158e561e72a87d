"""`manage.py simulate` drives teams through the real HTTP API of a running app."""

from __future__ import annotations

import io
import random

import pytest
from django.core.management import CommandError, call_command

from maraudes.management.commands.simulate import Walker, Zone, in_multipolygon
from maraudes.models import Encounter, Position, Role, Shift
from tests.factories import TeamFactory, ZoneFactory, tile, user_with_role

SQUARE = [[[2.0, 48.0], [2.1, 48.0], [2.1, 48.1], [2.0, 48.1], [2.0, 48.0]]]
HOLE = [[2.04, 48.04], [2.06, 48.04], [2.06, 48.06], [2.04, 48.06], [2.04, 48.04]]


def test_the_point_in_polygon_test_knows_holes():
    assert in_multipolygon(2.01, 48.01, [SQUARE])
    assert not in_multipolygon(2.2, 48.01, [SQUARE])
    assert not in_multipolygon(2.05, 48.05, [[SQUARE[0], HOLE]])


def test_a_walker_stays_inside_its_zone_and_walks_at_its_speed():
    zone = Zone(id=1, code="A", name="A", polygons=[[SQUARE[0], HOLE]])
    walker = Walker(zone=zone, speed=1.2, rng=random.Random(1))
    for _ in range(2000):
        before = walker.lon, walker.lat
        lon, lat = walker.step(5)
        assert zone.contains(lon, lat)
        moved = ((lon - before[0]) * 74_500) ** 2 + ((lat - before[1]) * 111_320) ** 2
        assert moved**0.5 <= 6.5


@pytest.mark.django_db(transaction=True)
def test_it_drives_two_teams_through_the_api(live_app):
    ZoneFactory(code="A", name="Parvis", geom=tile(0, 0))
    ZoneFactory(code="B", name="Île", geom=tile(1, 0))
    # Named so that their order by name is their order of creation (the factory's "Équipe
    # 100" comes before "Équipe 99").
    teams = [TeamFactory(name=f"Équipe {letter}") for letter in "ABC"]
    user_with_role(Role.COORDINATOR, username="coord")
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "simulate",
        teams=2,
        interval=0.2,
        duration=0.05,  # three seconds
        encounter_every=0.5,
        base_url=live_app,
        username="coord",
        password="secret-pass-123",
        seed=7,
        stdout=out,
        stderr=err,
    )

    assert err.getvalue() == ""
    shifts = list(Shift.objects.order_by("team_id"))
    assert [s.team_id for s in shifts] == sorted(t.pk for t in teams[:2])
    assert all(s.ended_at is not None for s in shifts)  # checked out at the end
    for shift in shifts:
        positions = Position.objects.filter(shift=shift)
        assert positions.count() >= 8
        # Every fix inside one zone, the same for the whole shift.
        zones = {
            code
            for code, geom in (("A", tile(0, 0)), ("B", tile(1, 0)))
            if positions.filter(point__within=geom).count() == positions.count()
        }
        assert len(zones) == 1
    assert Encounter.objects.filter(shift__in=shifts).count() >= 1
    text = out.getvalue()
    assert "début de maraude" in text and "fin de maraude" in text
    assert "Simulation terminée" in text and "rencontre" in text


@pytest.mark.django_db(transaction=True)
def test_it_says_so_when_there_are_fewer_teams_than_asked(live_app):
    ZoneFactory()
    TeamFactory()
    user_with_role(Role.COORDINATOR, username="coord")

    with pytest.raises(CommandError, match="5 équipe"):
        call_command(
            "simulate",
            teams=5,
            base_url=live_app,
            username="coord",
            password="secret-pass-123",
            stdout=io.StringIO(),
        )


@pytest.mark.django_db(transaction=True)
def test_it_says_so_when_the_password_is_wrong(live_app):
    user_with_role(Role.COORDINATOR, username="coord")

    with pytest.raises(CommandError, match="Connexion refusée pour « coord »"):
        call_command(
            "simulate", base_url=live_app, username="coord", password="nope", stdout=io.StringIO()
        )


def test_it_says_so_when_the_server_is_not_running():
    with pytest.raises(CommandError, match="Impossible de joindre"):
        call_command("simulate", base_url="http://127.0.0.1:9", password="x", stdout=io.StringIO())
