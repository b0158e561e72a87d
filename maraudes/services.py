"""Writes of the outreach domain. Each service validates, owns its transaction, and is
callable from a shell, a command or a test without HTTP."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from maraudes import realtime
from maraudes.days import epoch_microseconds, from_epoch_microseconds
from maraudes.db import float8_array, int8_array, prepared_cursor, text_array, timestamptz_array
from maraudes.fixes import MAX_FUTURE, Fix, FixError, Rejected, check_position, check_time
from maraudes.models import (
    Action,
    Encounter,
    Need,
    Organization,
    Position,
    PositionSource,
    Shift,
    Team,
    TeamMode,
)


def organization_create(*, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Le nom est obligatoire.")})
    taken = ValidationError({"name": _("Une structure porte déjà ce nom.")})
    if Organization.objects.filter(name__iexact=name).exists():
        raise taken
    try:
        with transaction.atomic():
            return Organization.objects.create(name=name)
    except IntegrityError:  # the same name created by a concurrent request
        raise taken from None


def team_create(
    *,
    organization: Organization,
    name: str,
    mode: str = TeamMode.FOOT,
    coverage_radius_m: float | None = None,
    color: str | None = None,
) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Le nom est obligatoire.")})
    team = Team(
        organization=organization,
        name=name,
        mode=mode,
        coverage_radius_m=coverage_radius_m,
        color=color or _team_default_color(organization, name),
    )
    team.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            team.save()
    except IntegrityError:
        raise ValidationError(
            {"name": _("Cette structure a déjà une équipe nommée « %(name)s ».") % {"name": name}}
        ) from None
    return team


_PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
]  # fmt: skip


def _team_default_color(organization: Organization, name: str) -> str:
    digest = hashlib.sha256(f"{organization.pk}:{name}".encode()).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


def tracker_token_new() -> tuple[str, str]:
    """A long unguessable token for background trackers, and the hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, tracker_token_hash(token)


def tracker_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- Shifts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftStarted:
    shift: Shift
    tracker_token: str  # shown once; only its hash is stored


def shift_start(
    *, team: Team, by: AbstractBaseUser | None, started_at: datetime | None = None
) -> ShiftStarted:
    """Check-in. `started_at` in the past records an outing after the fact."""
    now = timezone.now()
    started_at = started_at or now
    if started_at > now + MAX_FUTURE:
        raise ValidationError({"started_at": _("Le début ne peut pas être dans le futur.")})
    token, token_hash = tracker_token_new()
    with transaction.atomic():
        shift = Shift.objects.create(
            team=team,
            started_at=started_at,
            started_by=by if by is not None and by.is_authenticated else None,
            tracker_token_hash=token_hash,
        )
        realtime.shift_started(shift)
    return ShiftStarted(shift=shift, tracker_token=token)


def shift_end(
    *, shift: Shift, ended_at: datetime | None = None, automatically: bool = False
) -> Shift:
    """Check-out. Fixes recorded before `ended_at` may still arrive afterwards (offline)."""
    if shift.ended_at is not None:
        raise ValidationError({"shift": _("Cette maraude est déjà terminée.")})
    now = timezone.now()
    ended_at = ended_at or now
    if ended_at > now + MAX_FUTURE:
        raise ValidationError({"ended_at": _("La fin ne peut pas être dans le futur.")})
    if ended_at < shift.started_at:
        raise ValidationError({"ended_at": _("La fin doit suivre le début de la maraude.")})
    shift.ended_at = ended_at
    shift.closed_automatically = automatically
    with transaction.atomic():
        shift.save(update_fields=["ended_at", "closed_automatically"])
        realtime.shift_ended(shift)
    return shift


# --- Positions ------------------------------------------------------------------------------


@dataclass
class StoredFix:
    """A fix that was new and is now stored; x, y in the storage SRID."""

    t: datetime
    x: float
    y: float
    accuracy: float


@dataclass
class PositionsRecorded:
    accepted: list[StoredFix] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "accepted": len(self.accepted),
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in sorted(self.rejected, key=lambda r: r.index)],
        }


_INSERT_FIXES = """
INSERT INTO maraudes_position
    (shift_id, recorded_at, received_at, point, accuracy, speed, heading, source)
SELECT f.shift_id, f.t, %s, ST_Transform(ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326), %s),
       f.accuracy, NULLIF(f.speed, 'NaN'), NULLIF(f.heading, 'NaN'), f.source
FROM unnest(%s::int8[], %s::timestamptz[], %s::float8[], %s::float8[], %s::float8[],
            %s::float8[], %s::float8[], %s::text[])
     AS f(shift_id, t, lon, lat, accuracy, speed, heading, source)
ON CONFLICT (shift_id, recorded_at) DO NOTHING
RETURNING shift_id, (extract(epoch FROM recorded_at) * 1000000)::int8, ST_X(point), ST_Y(point)
"""


def positions_record(
    *, shift: Shift, fixes: Sequence[Fix], source: str = PositionSource.API
) -> PositionsRecorded:
    """Store a batch of validated fixes for a shift.

    Fixes outside the shift's window are rejected with the reason; a fix whose (shift, time)
    is already stored is a duplicate, and the first one stored wins. Returns the fixes that
    were new, in the storage SRID, for the coverage update.
    """
    return positions_record_many([(shift, fixes, source)])[0]


def positions_record_many(
    batches: Sequence[tuple[Shift, Sequence[Fix], str]],
) -> list[PositionsRecorded]:
    """positions_record for several batches (of one shift or several: the tracker requests
    that arrived together) in one statement; one result per batch, in order. When two
    batches carry the same (shift, time), the first one's fix is stored and the other's
    counts as a duplicate."""
    now = timezone.now()
    results: list[PositionsRecorded] = []
    owner: dict[tuple[int, int], tuple[PositionsRecorded, Fix]] = {}
    fixes_new: list[Fix] = []
    shift_ids: list[int] = []
    instants: list[int] = []
    sources: list[str] = []
    sent: list[int] = []
    for shift, fixes, source in batches:
        result = PositionsRecorded()
        results.append(result)
        in_window, result.rejected = fixes_in_window(shift, fixes, now=now)
        sent.append(len(in_window))
        shift_id = shift.pk
        for fix, instant in in_window:
            # Keyed by the instant in whole microseconds, as the insert returns it: cheaper
            # to read back than a timestamp, and exact whatever the fix's time zone.
            key = (shift_id, instant)
            if key not in owner:
                owner[key] = (result, fix)
                fixes_new.append(fix)
                instants.append(instant)
        shift_ids.extend([shift_id] * (len(fixes_new) - len(shift_ids)))
        sources.extend([source] * (len(fixes_new) - len(sources)))
    if fixes_new:
        nan = math.nan
        with prepared_cursor() as cursor:
            cursor.execute(
                _INSERT_FIXES,
                [
                    now,
                    settings.SRID,
                    int8_array(shift_ids),
                    timestamptz_array(instants),
                    float8_array([f.lon for f in fixes_new]),
                    float8_array([f.lat for f in fixes_new]),
                    float8_array([f.accuracy for f in fixes_new]),
                    float8_array([nan if f.speed is None else f.speed for f in fixes_new]),
                    float8_array([nan if f.heading is None else f.heading for f in fixes_new]),
                    text_array(sources),
                ],
                prepare=True,
                binary=True,
            )
            for shift_id, microseconds, x, y in cursor.fetchall():
                result, fix = owner[(shift_id, microseconds)]
                result.accepted.append(
                    StoredFix(
                        t=from_epoch_microseconds(microseconds), x=x, y=y, accuracy=fix.accuracy
                    )
                )
    for result, count in zip(results, sent, strict=True):
        result.duplicates = count - len(result.accepted)
    return results


def fixes_in_window(
    shift: Shift, fixes: Sequence[Fix], *, now: datetime
) -> tuple[list[tuple[Fix, int]], list[Rejected]]:
    """The fixes within the shift's window (from its start to its end, or to a little after
    `now` while it is open), each with its instant (maraudes.days.epoch_microseconds), and a
    rejection with the reason for each of the others. Instants are compared, not datetimes:
    two aware datetimes in different time zones compare several times slower."""
    window_end = shift.ended_at or now + MAX_FUTURE
    start, end = epoch_microseconds(shift.started_at), epoch_microseconds(window_end)
    in_window: list[tuple[Fix, int]] = []
    rejected: list[Rejected] = []
    for fix in fixes:
        instant = epoch_microseconds(fix.t)
        if instant < start:
            rejected.append(
                Rejected(
                    fix.index, _("avant le début de la maraude (%(t)s).") % _t(shift.started_at)
                )
            )
        elif instant > end:
            rejected.append(
                Rejected(fix.index, _("après la fin de la maraude (%(t)s).") % _t(window_end))
            )
        else:
            in_window.append((fix, instant))
    return in_window, rejected


def _t(moment: datetime) -> dict[str, str]:
    return {"t": timezone.localtime(moment).strftime("%d/%m/%Y %H:%M:%S")}


# --- Privacy and lifecycle ------------------------------------------------------------------


def shifts_close_stale(*, now: datetime | None = None) -> list[Shift]:
    """Close the shifts left open longer than SHIFT_MAX_HOURS: workers are tracked only
    during a shift. The shift ends at its last fix (or its start), not at the limit."""
    now = now or timezone.now()
    limit = now - timedelta(hours=settings.SHIFT_MAX_HOURS)
    stale = list(
        Shift.objects.filter(ended_at__isnull=True, started_at__lt=limit)
        .annotate(last_fix=Max("positions__recorded_at"))
        .order_by("started_at")
    )
    closed = []
    for shift in stale:
        ended_at = max(shift.last_fix or shift.started_at, shift.started_at)
        closed.append(shift_end(shift=shift, ended_at=ended_at, automatically=True))
    return closed


def positions_purge(*, now: datetime | None = None) -> int:
    """Delete raw fixes older than POSITION_RETENTION_DAYS. Per-day coverage, which names no
    worker, is kept."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.POSITION_RETENTION_DAYS)
    deleted, _by_model = Position.objects.filter(recorded_at__lt=cutoff).delete()
    return deleted


# --- Encounters -----------------------------------------------------------------------------

MAX_PEOPLE = 50
# An encounter saved offline may reach the server long after its shift ended.
ENCOUNTER_GRACE = timedelta(minutes=30)


@dataclass(frozen=True)
class EncounterSaved:
    encounter: Encounter
    created: bool


def encounter_create(
    *,
    client_id: uuid.UUID,
    shift: Shift,
    seen_at: datetime,
    lon: float,
    lat: float,
    people_count: int = 1,
    needs: Sequence[str] = (),
    actions: Sequence[str] = (),
    note: str = "",
    by: AbstractBaseUser | None = None,
) -> EncounterSaved:
    """Log an encounter. Idempotent on the client-generated `client_id`: a phone that sends
    the same encounter twice (retry after a timeout, outbox replay) stores it once."""
    existing = Encounter.objects.filter(client_id=client_id).select_related("shift").first()
    if existing is not None:
        if existing.shift_id != shift.pk:
            raise ValidationError(
                {"client_id": _("Cet identifiant sert déjà à une autre rencontre.")}
            )
        return EncounterSaved(existing, created=False)
    errors: dict[str, str] = {}
    if not 1 <= people_count <= MAX_PEOPLE:
        errors["people_count"] = _("Entre 1 et %(max)d personnes.") % {"max": MAX_PEOPLE}
    unknown = sorted(set(needs) - set(Need.values))
    if unknown:
        errors["needs"] = _("Besoins inconnus : %(v)s.") % {"v": ", ".join(unknown)}
    unknown = sorted(set(actions) - set(Action.values))
    if unknown:
        errors["actions"] = _("Actions inconnues : %(v)s.") % {"v": ", ".join(unknown)}
    if len(note) > 280:
        errors["note"] = _("280 caractères au plus.")
    try:
        check_time(seen_at)
    except FixError as exc:
        errors["seen_at"] = str(exc)
    try:
        check_position(lon, lat)
    except FixError as exc:
        errors["lon"] = str(exc)
    end = (shift.ended_at or timezone.now()) + ENCOUNTER_GRACE
    if "seen_at" not in errors and not (shift.started_at - ENCOUNTER_GRACE <= seen_at <= end):
        errors["seen_at"] = _("En dehors de la maraude.")
    if errors:
        raise ValidationError(errors)
    point = Point(lon, lat, srid=4326)
    point.transform(settings.SRID)
    try:
        with transaction.atomic():
            encounter = Encounter.objects.create(
                client_id=client_id,
                shift=shift,
                seen_at=seen_at,
                point=point,
                people_count=people_count,
                needs=sorted(set(needs)),
                actions=sorted(set(actions)),
                note=note.strip(),
                created_by=by if by is not None and by.is_authenticated else None,
            )
            realtime.encounter_created(encounter, lon=lon, lat=lat)
    except IntegrityError:  # the same client_id sent twice at once: the first one won
        return EncounterSaved(Encounter.objects.get(client_id=client_id), created=False)
    return EncounterSaved(encounter, created=True)


# --- Trackers -------------------------------------------------------------------------------

# A tracker empties its queue when the network comes back, possibly after check-out: its
# token keeps working this long after the shift's end. Points recorded after the end are
# refused whatever the grace (positions_record), so the grace only bounds how late a point of
# the shift may arrive; past it the tracker is told to stop (the token is dead).
TRACKER_GRACE = timedelta(minutes=30)


class TrackerTokenUnknown(Exception):
    def __init__(self) -> None:
        super().__init__(
            _(
                "Identifiant de suivi inconnu : vérifiez l'identifiant de l'appareil saisi "
                "dans le traceur (il change à chaque maraude)."
            )
        )


class TrackerTokenExpired(Exception):
    def __init__(self, shift: Shift) -> None:
        self.shift = shift
        super().__init__(
            _(
                "Cette maraude est terminée depuis le %(t)s : arrêtez le suivi dans le "
                "traceur ; une nouvelle maraude donne un nouvel identifiant."
            )
            % _t(shift.ended_at)  # type: ignore[arg-type]
        )


def shifts_for_tracker_tokens(tokens: Iterable[str]) -> dict[str, Shift]:
    """The shifts of these tracker tokens, by token, in one query; an unknown token is
    missing. Lean on purpose (no join, no ordering): it runs for every tracker request."""
    by_hash = {tracker_token_hash(token): token for token in tokens}
    if not by_hash:
        return {}
    shifts = Shift.objects.filter(tracker_token_hash__in=list(by_hash)).order_by()
    return {by_hash[shift.tracker_token_hash]: shift for shift in shifts}


def tracker_token_check(shift: Shift | None, *, now: datetime) -> Shift:
    """The shift a token was found for, if its tracker may still send: TrackerTokenUnknown
    when none was found, TrackerTokenExpired once it ended more than TRACKER_GRACE ago."""
    if shift is None:
        raise TrackerTokenUnknown()
    if shift.ended_at is not None and now > shift.ended_at + TRACKER_GRACE:
        raise TrackerTokenExpired(shift)
    return shift
