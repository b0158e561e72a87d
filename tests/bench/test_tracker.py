"""bench.tracker: the measurement and its coverage check, small, against the real ASGI app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.tracker import bench_tracker, catch_up_wait, coverage_check, world_create
from maraudes.models import CoverageBacklog
from tests.support.paris import load_zones


@pytest.fixture
def background(settings):
    settings.TRACKER_COVERAGE = "background"  # as the benchmark's server runs


def test_the_tracker_bench_posts_and_checks_that_coverage_caught_up(live_app, background):
    load_zones()
    tokens = world_create(3, started_at=datetime.now(UTC) - timedelta(hours=3))

    results = bench_tracker(live_app, tokens, clients=3, seconds=1.0)

    assert results["tracker_requests"] > 0
    assert catch_up_wait(timeout=20) >= 0
    assert not CoverageBacklog.objects.exists()
    assert coverage_check(len(tokens)) > 0


def test_the_coverage_check_fails_when_a_shift_has_none(transactional_db):
    world_create(1, started_at=datetime.now(UTC) - timedelta(hours=3))

    with pytest.raises(RuntimeError, match="0 of 1 shifts covered"):
        coverage_check(1)
