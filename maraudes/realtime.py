"""The only way out to live clients (STYLE.md, "Real time").

`publish` stores the event with its sequence number inside the caller's transaction and sends
it with `transaction.on_commit`: no client ever sees a write that was rolled back, and a client
that reconnects with the last `seq` it saw gets what it missed from the table. Events are
small JSON dicts with a `type`, built by the named functions below. Group names come from
functions shared by this module and the consumers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from maraudes.models import Encounter, Event, Shift

log = logging.getLogger(__name__)

# Positions are coalesced per team: at most one event a second.
POSITION_EVERY = timedelta(seconds=1)


def group_coordination() -> str:
    return "live.coordination"


def group_team(team_id: int) -> str:
    return f"live.team.{team_id}"


@dataclass(frozen=True)
class Draft:
    """An event to publish: its type, its data, the team it concerns."""

    type: str
    data: dict
    team_id: int | None = None
    to_team: bool = False


# One statement stores a whole batch of events and returns their sequence numbers. A position
# is left out when one was stored for its team less than POSITION_EVERY ago.
_INSERT_EVENTS = """
INSERT INTO maraudes_event (created_at, type, team_id, to_team, data)
SELECT %(now)s, e.type, e.team, e.to_team, e.data
FROM unnest(%(types)s::text[], %(teams)s::bigint[], %(to_team)s::boolean[], %(data)s::jsonb[])
     WITH ORDINALITY AS e(type, team, to_team, data, i)
WHERE e.type <> 'position' OR NOT EXISTS (
  SELECT 1 FROM maraudes_event r
  WHERE r.team_id = e.team AND r.type = 'position' AND r.created_at > %(since)s)
ORDER BY e.i
RETURNING seq, created_at, type, team_id, to_team, data
"""


def publish_many(drafts: Sequence[Draft]) -> list[Event]:
    """Store the events now (positions coalesced, the latest per team); send them to their
    groups once the transaction commits, all in one hop to the channel layer."""
    latest_position: dict[int | None, int] = {
        d.team_id: i for i, d in enumerate(drafts) if d.type == "position"
    }
    kept = [
        d for i, d in enumerate(drafts) if d.type != "position" or latest_position[d.team_id] == i
    ]
    if not kept:
        return []
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_EVENTS,
            {
                "now": now,
                "since": now - POSITION_EVERY,
                "types": [d.type for d in kept],
                "teams": [d.team_id for d in kept],
                "to_team": [d.to_team for d in kept],
                "data": [json.dumps(d.data, cls=DjangoJSONEncoder) for d in kept],
            },
        )
        events = [
            # Django leaves jsonb undecoded on its connections (JSONField decodes).
            Event(
                seq=seq,
                created_at=at,
                type=kind,
                team_id=team,
                to_team=to_team,
                data=json.loads(data) if isinstance(data, str) else data,
            )
            for seq, at, kind, team, to_team, data in cursor.fetchall()
        ]
    if events:
        transaction.on_commit(lambda: send_all(events))
    return events


def publish(
    event_type: str, data: dict, *, team_id: int | None = None, to_team: bool = False
) -> Event:
    """Store the event now; send it to its groups once the transaction commits."""
    (event,) = publish_many([Draft(event_type, data, team_id, to_team)])
    return event


def _groups(event: Event) -> list[str]:
    groups = [group_coordination()]
    if event.to_team and event.team_id:
        groups.append(group_team(event.team_id))
    return groups


def send(event: Event) -> None:
    send_all([event])


# A long-lived plain thread (the tracker drainer, zones.catchup) sends through the server's
# event loop: the channel layer keeps state per event loop (channels-redis: connections,
# receive locks), and sending from loops of its own, one per async_to_sync call, made the
# server's consumers die on Redis read timeouts.
_through = threading.local()
SEND_TIMEOUT_S = 10


@contextmanager
def sending_through(loop: asyncio.AbstractEventLoop | None) -> Iterator[None]:
    """Within the block, this thread's events are sent by `loop` (the server's), when it
    runs; else as usual."""
    _through.loop = loop
    try:
        yield
    finally:
        _through.loop = None


def server_loop() -> asyncio.AbstractEventLoop | None:
    """The server's event loop, seen from its own thread or from a thread it handed sync
    work to (asgiref records it there); None outside a server (tests, commands)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid():
        return getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return None


def send_all(events: Sequence[Event]) -> None:
    layer = get_channel_layer()
    if layer is None or not events:
        return
    loop = getattr(_through, "loop", None)
    if loop is not None and loop.is_running():
        asyncio.run_coroutine_threadsafe(_send_all(layer, events), loop).result(SEND_TIMEOUT_S)
        return
    async_to_sync(_send_all)(layer, events)


async def _send_all(layer, events: Sequence[Event]) -> None:
    for event in events:
        message = {"type": "event.forward", "event": event.as_message()}
        for group in _groups(event):
            try:
                await layer.group_send(group, message)
            except Exception:  # the event is stored: clients catch up on reconnect
                log.exception("could not send event %s to %s", event.seq, group)


def events_since(seq: int, *, team_id: int | None = None, limit: int = 1000) -> list[Event]:
    """Events after `seq`, in order; for a team feed only those sent to that team."""
    events = Event.objects.filter(seq__gt=seq).order_by("seq")
    if team_id is not None:
        events = events.filter(team_id=team_id, to_team=True)
    return list(events[:limit])


def last_seq() -> int:
    latest = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    return latest or 0


# --- Event builders -------------------------------------------------------------------------


def _iso(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment else None


def shift_started(shift: Shift) -> Event:
    return publish("shift_started", _shift_data(shift), team_id=shift.team_id)


def shift_ended(shift: Shift) -> Event:
    return publish("shift_ended", _shift_data(shift), team_id=shift.team_id)


def _shift_data(shift: Shift) -> dict:
    team = shift.team
    return {
        "shift": shift.pk,
        "team": team.pk,
        "team_name": team.name,
        "color": team.color,
        "started_at": _iso(shift.started_at),
        "ended_at": _iso(shift.ended_at),
    }


def position_draft(*, shift: Shift, t: datetime, lon: float, lat: float, accuracy: float) -> Draft:
    data = {
        "shift": shift.pk,
        "team": shift.team_id,
        "t": _iso(t),
        "lon": round(lon, 6),
        "lat": round(lat, 6),
        "accuracy": round(accuracy, 1),
    }
    return Draft("position", data, team_id=shift.team_id)


def encounter_created(encounter: Encounter, *, lon: float, lat: float) -> Event:
    """No note: notes are never shown on shared maps."""
    shift = encounter.shift
    data = {
        "encounter": encounter.pk,
        "shift": shift.pk,
        "team": shift.team_id,
        "seen_at": _iso(encounter.seen_at),
        "lon": round(lon, 6),
        "lat": round(lat, 6),
        "people_count": encounter.people_count,
        "needs": list(encounter.needs),
    }
    return publish("encounter_created", data, team_id=shift.team_id)


def coverage_changed_draft(*, zones: list[dict]) -> Draft:
    """zones: [{"zone", "code", "kind", "day", "covered_m2"}] for the zone-days that changed."""
    return Draft("coverage_changed", {"zones": zones})


def coverage_changed(*, zones: list[dict]) -> Event:
    return publish_many([coverage_changed_draft(zones=zones)])[0]


def assignment_changed(*, action: str, assignment_data: dict, team_id: int) -> Event:
    """action: "created" or "deleted"; sent to the coordination and to the team."""
    return publish(
        "assignment_changed",
        {"action": action, **assignment_data},
        team_id=team_id,
        to_team=True,
    )


def oldest_seq() -> int | None:
    """The oldest event still stored: a client behind it missed events that are gone."""
    return Event.objects.order_by("seq").values_list("seq", flat=True).first()
