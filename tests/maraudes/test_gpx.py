"""maraudes.gpx: GPX files read into fixes, safely, with a reason for every refused point."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime

import pytest

from maraudes.gpx import GPX_ACCURACY_M, GpxError, parse_gpx

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
WORLD = (-180.0, -90.0, 180.0, 90.0)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE gpx [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gpx version="1.1" creator="x"><trk><name>&lol9;</name><trkseg>
<trkpt lat="48.853" lon="2.3499"><time>2026-11-20T20:00:00Z</time></trkpt>
</trkseg></trk></gpx>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE gpx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<gpx version="1.1" creator="x"><trk><name>&xxe;</name><trkseg>
<trkpt lat="48.853" lon="2.3499"><time>2026-11-20T20:00:00Z</time></trkpt>
</trkseg></trk></gpx>
"""


def gpx(*segments: str, extra: str = "") -> bytes:
    body = "".join(f"<trkseg>{s}</trkseg>" for s in segments)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        f"{extra}<trk><name>Maraude</name>{body}</trk></gpx>"
    ).encode()


def pt(t: str | None = "2026-11-20T20:00:00Z", lat=48.853, lon=2.3499, inner: str = "") -> str:
    time = f"<time>{t}</time>" if t else ""
    return f'<trkpt lat="{lat}" lon="{lon}">{time}{inner}</trkpt>'


@pytest.fixture
def world(settings):
    """The gpxpy test files are outside Paris: read them as if the territory were the world."""
    settings.TERRITORY_BBOX = WORLD


def test_it_reads_the_paris_run(shared_data):
    result = parse_gpx((shared_data / "gpx/paris/paris14_running_2015-08-03.gpx").read_bytes())

    assert (result.tracks, result.segments, result.waypoints) == (1, 1, 0)
    assert len(result.fixes) == 257 and result.rejected == []
    first, last = result.fixes[0], result.fixes[-1]
    assert first.t == datetime(2015, 8, 3, 19, 7, 54, tzinfo=UTC)
    assert last.t == datetime(2015, 8, 3, 19, 37, 27, tzinfo=UTC)
    assert first.lon == pytest.approx(2.32128, abs=1e-5)  # lon comes before lat in this file
    assert first.lat == pytest.approx(48.83561, abs=1e-5)
    assert first.accuracy == GPX_ACCURACY_M
    assert [f.index for f in result.fixes] == list(range(257))


def test_it_skips_an_empty_segment(world, shared_data):
    result = parse_gpx(
        (shared_data / "gpx/other/track-with-empty-segment.gpx").read_bytes(), now=NOW
    )

    assert (result.tracks, result.segments) == (1, 1)
    assert len(result.fixes) == 9


def test_it_reads_several_segments_and_ignores_waypoints(world, shared_data):
    result = parse_gpx((shared_data / "gpx/other/cerknicko-jezero.gpx").read_bytes(), now=NOW)

    assert result.waypoints == 7
    assert result.segments == 7  # of 8: one is empty
    assert len(result.fixes) == 296
    assert result.rejected == []


def test_points_without_time_are_refused_with_the_reason(world, shared_data):
    result = parse_gpx((shared_data / "gpx/other/korita-zbevnica.gpx").read_bytes(), now=NOW)

    # Its second track has no times, the other two have: 358 refused, 513 kept.
    assert len(result.rejected) == 358
    assert all("pas d'heure" in r.reason for r in result.rejected)
    assert result.rejected[0].reason.startswith("trace 2, segment 1, point 1 : pas d'heure")
    assert len(result.fixes) == 513 and result.waypoints == 2


def test_a_file_with_a_bom_and_no_track_is_refused(shared_data):
    with pytest.raises(GpxError, match=r"Aucune trace \(<trk>\).*points d'intérêt : 1"):
        parse_gpx((shared_data / "gpx/other/unicode_with_bom.gpx").read_bytes())


def test_a_bom_is_no_obstacle(shared_data):
    data = (shared_data / "gpx/paris/paris14_running_2015-08-03.gpx").read_bytes()

    assert len(parse_gpx(codecs.BOM_UTF8 + data).fixes) == 257


def test_points_outside_paris_are_refused_with_the_reason(shared_data):
    result = parse_gpx((shared_data / "gpx/other/cerknicko-jezero.gpx").read_bytes(), now=NOW)

    assert result.fixes == []
    assert "hors du territoire" in result.rejected[0].reason


def test_each_bad_point_is_named_and_the_good_ones_kept():
    data = gpx(
        pt("2026-11-20T20:00:00Z") + pt(None) + pt("2026-11-20T20:00:20Z", lat=2.3499, lon=48.853),
        pt("2026-11-20T20:05:00Z") + pt("2026-11-20T23:00:00Z") + pt("2026-11-20T20:06:00"),
    )

    result = parse_gpx(data, now=NOW)

    assert [f.index for f in result.fixes] == [0, 3]
    reasons = {r.index: r.reason for r in result.rejected}
    assert reasons[1].startswith("trace 1, segment 1, point 2 : pas d'heure")
    assert "inversées" in reasons[2]
    assert reasons[4].startswith("trace 1, segment 2, point 2 :") and "futur" in reasons[4]
    assert "sans fuseau" in reasons[5]


def test_hdop_speed_and_course_are_read():
    data = (
        b'<gpx version="1.0" creator="t" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>'
        b'<trkpt lat="48.853" lon="2.3499"><time>2026-11-20T20:00:00Z</time>'
        b"<course>90.5</course><speed>1.4</speed><hdop>2.0</hdop></trkpt>"
        b"</trkseg></trk></gpx>"
    )

    (fix,) = parse_gpx(data, now=NOW).fixes

    assert (fix.accuracy, fix.speed, fix.heading) == (10.0, 1.4, 90.5)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (b'<?xml version="1.0"?><!DOCTYPE gpx><gpx version="1.1"/>', "DOCTYPE"),
        (gpx(pt())[:-20], "XML mal formé"),
        (b"ceci n'est pas du XML", "XML mal formé"),
        (b"", "vide"),
        (b"<kml><Document/></kml>", "racine est <kml>"),
        (b'<gpx version="1.1" creator="t"></gpx>', "Aucune trace"),
        (gpx(""), "aucun point"),
        (b'<gpx><trk><trkseg><trkpt lat="abc" lon="2.35"/></trkseg></trk></gpx>', "illisible"),
        (b'<gpx><trk><trkseg><trkpt lon="2.35"/></trkseg></trk></gpx>', "illisible"),
    ],
)
def test_an_unusable_file_is_refused_whole(data, expected):
    with pytest.raises(GpxError, match=expected):
        parse_gpx(data, now=NOW)


def test_a_latin1_file_is_read():
    data = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><gpx version="1.1" creator="t">'
        f"<trk><name>Maraude Saint-Médard</name><trkseg>{pt()}</trkseg></trk></gpx>"
    ).encode("latin-1")

    assert len(parse_gpx(data, now=NOW).fixes) == 1


def test_gpxpy_alone_would_expand_entities_hence_the_defusedxml_gate():
    """gpxpy 1.6 parses with ElementTree, not defusedxml: an internal entity reaches the
    track. This is why parse_gpx lets defusedxml refuse every DTD first."""
    import gpxpy

    data = (
        '<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY who "Jean Dupont">]>'
        '<gpx version="1.1" creator="t"><trk><name>&who;</name></trk></gpx>'
    )

    assert gpxpy.parse(data).tracks[0].name == "Jean Dupont"
    with pytest.raises(GpxError, match="DOCTYPE"):
        parse_gpx(data.encode())
