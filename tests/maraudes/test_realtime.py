"""Services publish their events after commit, stored with a sequence number first."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from maraudes import realtime
from maraudes.fixes import Fix
from maraudes.models import Event
from maraudes.services import encounter_create, shift_end, shift_start
from tests.factories import ShiftFactory, TeamFactory, ZoneFactory, l93, tile
from tests.support.paris import to_wgs84
from zones.services import track_ingest

pytestmark = pytest.mark.django_db


def test_shift_start_is_sent_only_after_commit(sent, django_capture_on_commit_callbacks):
    team = TeamFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        started = shift_start(team=team, by=None)
        assert sent == []  # stored, not sent yet
    assert len(callbacks) == 1
    assert [e.type for e in sent] == ["shift_started"]
    message = sent[0].as_message()
    assert message["seq"] == sent[0].seq and message["shift"] == started.shift.pk
    assert message["team_name"] == team.name


def test_a_rolled_back_write_sends_nothing(sent, django_capture_on_commit_callbacks):
    team = TeamFactory()
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                shift_start(team=team, by=None)
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert sent == []
    assert not Event.objects.exists()


def test_sequence_numbers_grow_and_replay_in_order(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        shift = shift_start(team=TeamFactory(), by=None).shift
        shift_end(shift=shift)
    first, second = sent
    assert second.seq > first.seq
    assert [e.seq for e in realtime.events_since(first.seq - 1)] == [first.seq, second.seq]
    assert realtime.events_since(second.seq) == []


def test_a_batch_sends_one_position_and_the_coverage_change(
    sent, django_capture_on_commit_callbacks
):
    ZoneFactory(code="A", geom=tile(0, 0))
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    lon, lat = to_wgs84().transform(l93(300).x, l93(0, 300).y)
    now = timezone.now()
    fixes = [
        Fix(t=now - timedelta(seconds=60 - 10 * i), lon=lon + i * 1e-5, lat=lat, accuracy=5)
        for i in range(5)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        track_ingest(shift=shift, fixes=fixes)
    assert [e.type for e in sent] == ["position", "coverage_changed"]
    position, coverage = (e.as_message() for e in sent)
    assert position["lon"] == pytest.approx(lon + 4e-5, abs=1e-6)  # the latest fix
    assert coverage["zones"][0]["code"] == "A" and coverage["zones"][0]["covered_m2"] > 30_000


def test_positions_are_coalesced_to_one_a_second_per_team(sent, django_capture_on_commit_callbacks):
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            fix = Fix(t=now - timedelta(seconds=30 - i), lon=2.35, lat=48.85, accuracy=5)
            track_ingest(shift=shift, fixes=[fix])
    assert [e.type for e in sent].count("position") == 1


def test_an_encounter_event_carries_no_note(sent, django_capture_on_commit_callbacks):
    shift = ShiftFactory(started_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        encounter_create(
            client_id=uuid.uuid4(),
            shift=shift,
            seen_at=timezone.now(),
            lon=2.35,
            lat=48.85,
            note="sous le pont, à revoir",
        )
    message = sent[0].as_message()
    assert message["type"] == "encounter_created"
    assert "note" not in message and "à revoir" not in str(message)
