"""bench.run's service ingestion: every batch stored once and in its shift's order, whether one
caller takes them or several processes share them."""

from __future__ import annotations

import pytest
from django.db.models import Count

from bench.run import SERVICE_BATCH, batches, bench_service, generate, world_create
from maraudes.models import Position
from tests.support.paris import load_zones
from zones.models import CoveragePiece


@pytest.mark.parametrize("callers", [1, 2])
def test_every_batch_is_ingested_once_and_in_order(transactional_db, callers):
    load_zones()
    scenario = generate(teams=3, nights=2, fixes=2500, seed=7)  # 3 batches a shift
    world = world_create(scenario)

    result = bench_service(world, list(scenario.shifts), callers=callers)

    assert result["ingest_service_callers"] == callers
    assert result["ingest_service_fixes"] == Position.objects.count() > 0
    # A batch that follows its shift's stored fixes adds one piece; one that came before an
    # earlier batch of its shift would have made the shift-day recomputed, into one piece.
    pieces = dict(CoveragePiece.objects.values_list("shift_id").annotate(n=Count("id")).order_by())
    expected = {
        world.shift_ids[(plan.team, plan.night)]: len(list(batches(plan, SERVICE_BATCH)))
        for plan in scenario.shifts
    }
    assert pieces == expected
