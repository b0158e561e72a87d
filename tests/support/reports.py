"""Shared setup of the weekly report tests (tests/zones, tests/api, tests/frontend): walks and
encounters placed in Lambert-93 and sent through the services, and the week 2026-W47 the API
and the page are tested on (the `week47` fixture of tests/conftest.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from maraudes.fixes import Fix
from maraudes.models import Shift, Team
from maraudes.services import encounter_create, shift_start
from tests.factories import ORIGIN_X, ORIGIN_Y, PARIS, TeamFactory, ZoneFactory, tile
from tests.support.paris import to_wgs84
from zones.services import track_ingest

# Inside tile (0, 0), 500 m north of its south edge.
A_X, A_Y = ORIGIN_X + 200, ORIGIN_Y + 500
# Inside tile (1, 0).
B_X, B_Y = ORIGIN_X + 1_300, ORIGIN_Y + 500


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def walk(
    team: Team,
    *,
    start: datetime,
    x: float,
    y: float,
    n: int = 31,
    every_s: int = 10,
    dx: float = 10.0,
    dy: float = 0.0,
    shift: Shift | None = None,
) -> Shift:
    """`n` fixes `every_s` seconds apart from (x, y) in Lambert-93, `dx`/`dy` metres each,
    sent in one batch (a new shift, started a minute before, unless `shift` is given)."""
    if shift is None:
        shift = shift_start(team=team, by=None, started_at=start - timedelta(minutes=1)).shift
    transformer = to_wgs84()
    fixes = []
    for i in range(n):
        lon, lat = transformer.transform(x + dx * i, y + dy * i)
        fixes.append(
            Fix(t=start + timedelta(seconds=every_s * i), lon=lon, lat=lat, accuracy=5, index=i)
        )
    track_ingest(shift=shift, fixes=fixes)
    return shift


def meet(shift: Shift, *, at: datetime, x: float, y: float, people: int, needs=()) -> None:
    lon, lat = to_wgs84().transform(x, y)
    encounter_create(
        client_id=uuid.uuid4(),
        shift=shift,
        seen_at=at,
        lon=lon,
        lat=lat,
        people_count=people,
        needs=list(needs),
    )


def make_week47() -> None:
    """Week 2026-W47 over three quartiers and an arrondissement: zone 1 walked twice (two
    teams, five minutes each), zone 2 once (ten minutes), zone 10 never; people met: 2 + 4 in
    zone 1, 1 in zone 2."""
    ZoneFactory(code="1", name="Saint-Germain-l'Auxerrois", kind="quartier", geom=tile(0, 0))
    ZoneFactory(code="2", name="Halles", kind="quartier", geom=tile(1, 0))
    ZoneFactory(code="10", name="Élysée", kind="quartier", geom=tile(2, 0))
    ZoneFactory(code="75101", name="Paris 1er", kind="arrondissement", geom=tile(0, 1))
    team, other = TeamFactory(), TeamFactory()
    first = walk(team, start=paris(2026, 11, 17, 22), x=A_X, y=A_Y)
    walk(other, start=paris(2026, 11, 17, 23), x=A_X, y=A_Y + 300)
    second = walk(team, start=paris(2026, 11, 19, 21, 30), x=B_X, y=B_Y, n=61)
    meet(first, at=paris(2026, 11, 17, 22, 2), x=A_X + 50, y=A_Y, people=2, needs=["food"])
    meet(first, at=paris(2026, 11, 17, 22, 4), x=A_X + 80, y=A_Y, people=4, needs=["shelter"])
    meet(second, at=paris(2026, 11, 19, 21, 32), x=B_X + 30, y=B_Y, people=1, needs=["food"])
