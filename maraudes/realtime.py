"""The only way out to live clients (STYLE.md, "Real time").

`publish` stores the event with its sequence number inside the caller's transaction and sends
it with `transaction.on_commit`: no client ever sees a write that was rolled back, and a client
that reconnects with the last `seq` it saw gets what it missed from the table. Events are
small JSON dicts with a `type`, built by the named functions below. Group names come from
functions shared by this module and the consumers.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from maraudes.models import Encounter, Event, Shift

log = logging.getLogger(__name__)

# Positions are coalesced per team: at most one event a second.
POSITION_EVERY = timedelta(seconds=1)


def group_coordination() -> str:
    return "live.coordination"


def group_team(team_id: int) -> str:
    return f"live.team.{team_id}"


def publish(
    event_type: str, data: dict, *, team_id: int | None = None, to_team: bool = False
) -> Event:
    """Store the event now; send it to its groups once the transaction commits."""
    event = Event.objects.create(type=event_type, data=data, team_id=team_id, to_team=to_team)
    transaction.on_commit(lambda: send(event))
    return event


def send(event: Event) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "event.forward", "event": event.as_message()}
    groups = [group_coordination()]
    if event.to_team and event.team_id:
        groups.append(group_team(event.team_id))
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
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


def position(*, shift: Shift, t: datetime, lon: float, lat: float, accuracy: float) -> Event | None:
    """The team's latest fix, unless one was published for the team less than a second ago."""
    recent = Event.objects.filter(
        team_id=shift.team_id, type="position", created_at__gt=timezone.now() - POSITION_EVERY
    )
    if recent.exists():
        return None
    data = {
        "shift": shift.pk,
        "team": shift.team_id,
        "t": _iso(t),
        "lon": round(lon, 6),
        "lat": round(lat, 6),
        "accuracy": round(accuracy, 1),
    }
    return publish("position", data, team_id=shift.team_id)


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


def coverage_changed(*, zones: list[dict]) -> Event:
    """zones: [{"zone", "code", "kind", "day", "covered_m2"}] for the zone-days that changed."""
    return publish("coverage_changed", {"zones": zones})


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
