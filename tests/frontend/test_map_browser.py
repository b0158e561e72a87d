"""The coordinator's map in a real Chromium, against the app served by uvicorn (live_app).

The basemap tiles are blocked in every test (an offline LAN, and no test reaches the
internet): the map must still show zones, white zones and teams. Screenshots of a 1366x768
laptop screen land in test-artifacts/.

The tests that need the live feed skip, saying why, while /ws/live/ is not routed.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.request import Request, urlopen

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from maraudes.days import service_day
from maraudes.fixes import Fix
from maraudes.models import Role
from maraudes.services import shift_start
from tests.browser.harness import artifact_path, log_in_by_cookie
from tests.factories import TeamFactory, ZoneFactory, tile, user_with_role
from tests.support.paris import to_wgs84
from zones.models import Assignment
from zones.services import track_ingest

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}
SLOW = 20_000  # the first load computes staleness and white zones: give it time


@pytest.fixture
def browser_context_args() -> dict:
    return {"locale": "fr-FR", "timezone_id": "Europe/Paris", "viewport": LAPTOP}


def live_feed_routed() -> bool:
    from api.routing import websocket_urlpatterns

    return any(str(p.pattern).startswith("ws/live/") for p in websocket_urlpatterns)


needs_live_feed = pytest.mark.skipif(
    not live_feed_routed(),
    reason="/ws/live/ is not routed yet (api.routing.websocket_urlpatterns): the live "
    "feed comes with the websocket consumers; the lead enables these tests when it lands.",
)


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = to_wgs84().transform(x, y)
    return round(lon, 6), round(lat, 6)


@pytest.fixture
def scene(transactional_db):
    """Six 1 km sectors (3 x 2 from Notre-Dame's parvis), two teams, a coordinator, and Nord 1
    out tonight, walking the first sector for the last ten minutes.

    Requested before `page` by the tests: written before Playwright starts, while this thread
    may still send the services' events."""
    names = ["Cité", "Marais", "Bastille", "Odéon", "Panthéon", "Jardin des Plantes"]
    zones = {}
    for i, name in enumerate(names):
        code = f"S0{i + 1}"
        zones[code] = ZoneFactory(code=code, name=name, kind="secteur", geom=tile(i % 3, i // 3))
    nord = TeamFactory(name="Nord 1", color="#d62728", organization__name="Aurore")
    solidarite = TeamFactory(name="Solidarité 1", color="#1f77b4", organization__name="Emmaüs")
    nadia = user_with_role(Role.COORDINATOR, username="nadia")
    now = timezone.now()
    shift = shift_start(team=nord, by=None, started_at=now - timedelta(hours=1)).shift
    fixes = []
    for i in range(60):  # one every 10 s, eastwards across S01
        lon, lat = lonlat(652_200 + 10 * i, 6_862_500)
        t = now - timedelta(seconds=600 - 10 * i)
        fixes.append(Fix(t=t, lon=lon, lat=lat, accuracy=5, index=i))
    track_ingest(shift=shift, fixes=fixes)
    return {
        "zones": zones,
        "nord": nord,
        "solidarite": solidarite,
        "nadia": nadia,
        "shift": shift,
        "last": fixes[-1],
        "tonight": service_day(now),
    }


def block_tiles(page, live_app: str) -> list[str]:
    """Abort every request that does not go to the app: the tiles above all."""
    blocked: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(live_app):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def open_map(page, live_app: str, username: str = "nadia") -> list[str]:
    blocked = block_tiles(page, live_app)
    page.goto("/connexion/?next=/carte/")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(f"{live_app}/carte/")
    expect(page.locator("#white-list li.white-item").first).to_be_visible(timeout=SLOW)
    page.wait_for_function("window.maraudes && window.maraudes.state.loadedOnce", timeout=SLOW)
    return blocked


@pytest.mark.parametrize(
    ("locale", "legend", "summary", "age", "assign"),
    [
        ("en-GB", "Legend", "No encounters from ", r"last position \d+ s ago", "assign…"),
        ("fr-FR", "Légende", "Aucune rencontre du ", r"dernier point il y a \d+ s", "affecter…"),
    ],
    ids=["english", "french"],
)
def test_the_maps_script_speaks_the_language_of_the_browser(
    request, scene, live_app, browser, locale, legend, summary, age, assign
):
    """What map.js writes (legend, summary, team ages, white-zone buttons) comes from the
    scripts' catalog of the page's language, not from French literals."""
    context = browser.new_context(
        base_url=live_app, locale=locale, timezone_id="Europe/Paris", viewport=LAPTOP
    )
    context.set_default_timeout(10_000)
    try:
        log_in_by_cookie(context, live_app, scene["nadia"])
        page = context.new_page()
        block_tiles(page, live_app)
        page.goto("/carte/")
        page.wait_for_function("window.maraudes && window.maraudes.state.loadedOnce", timeout=SLOW)

        expect(page.locator(".legend-toggle")).to_have_text(legend)
        expect(page.locator("#window-summary")).to_contain_text(summary)
        expect(page.locator("#teams-list .team-age")).to_have_text(re.compile(age))
        expect(page.locator("#white-list .white-assign button").first).to_have_text(assign)
        page.screenshot(path=artifact_path(request.node), full_page=True)
    finally:
        context.close()


def zone_path(page, code: str):
    return page.locator(f'path.zone[data-zone-code="{code}"]')


def marker(page, team_id: int):
    return page.locator(f'.team-marker[data-team="{team_id}"]')


def wait_for_marker_at(page, team_id: int, lon: float, lat: float) -> None:
    page.wait_for_function(
        """([team, lon, lat]) => {
            const el = document.querySelector(`.team-marker[data-team="${team}"]`);
            return el && Math.abs(parseFloat(el.dataset.lon) - lon) < 1e-6
                      && Math.abs(parseFloat(el.dataset.lat) - lat) < 1e-6;
        }""",
        arg=[team_id, lon, lat],
        timeout=10_000,
    )


def post_fixes(live_app: str, user, shift, fixes: list[tuple[float, float]]) -> dict:
    """Through the real HTTP API, as a phone would (token auth)."""
    token, _ = Token.objects.get_or_create(user=user)
    now = timezone.now()
    body = {
        "fixes": [
            {"t": (now - timedelta(seconds=len(fixes) - i)).isoformat(), "lon": lon, "lat": lat,
             "accuracy": 5}
            for i, (lon, lat) in enumerate(fixes)
        ]
    }  # fmt: skip
    request = Request(  # noqa: S310 - the test's own server
        f"{live_app}/api/v1/shifts/{shift.pk}/positions/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token.key}"},
        method="POST",
    )
    with urlopen(request, timeout=10) as response:  # noqa: S310 - the test's own server
        return json.load(response)


# --- What the coordinator sees ------------------------------------------------------------


def test_the_coordinator_sees_zones_white_zones_and_teams_without_tiles(
    request, scene, live_app, page
):
    blocked = open_map(page, live_app)

    # Zones, coloured by staleness, and the white zones of the last 7 days, all without tiles.
    expect(page.locator("path.zone")).to_have_count(6)
    expect(page.locator(".leaflet-staleness-pane path").first).to_be_attached()
    expect(page.locator(".leaflet-white-pane path.white-zone").first).to_be_attached()
    tiles_host = re.match(r"https?://[^/{]+", settings.TILES_URL).group(0)
    assert any(url.startswith(tiles_host) for url in blocked), "no tile was even asked for"
    expect(page.locator(".leaflet-tile-loaded")).to_have_count(0)
    expect(page.locator(".leaflet-control-attribution")).to_contain_text("OpenStreetMap")

    # White zones ranked by priority, each with its reason: never-visited sectors first.
    items = page.locator("#white-list li.white-item")
    expect(items).to_have_count(6)
    expect(items.first.locator(".reason")).to_contain_text("jamais visitée")
    expect(page.locator('#white-list li[data-code="S01"] .reason')).to_contain_text(
        "visitée ce jour"
    )
    expect(page.locator("#white-count")).to_have_text("6")

    # Nord 1 out tonight: in the side panel with the age of its last fix, and on the map.
    nord = scene["nord"]
    expect(page.locator("#teams-list")).to_contain_text("Nord 1")
    expect(page.locator("#teams-list")).to_contain_text(re.compile(r"dernier point il y a \d+ s"))
    expect(marker(page, nord.pk)).to_be_visible()
    expect(page.locator(".leaflet-trails-pane path")).to_have_count(1)

    # The legend is readable, the connection state visible, nothing cut off on a laptop.
    legend = page.get_by_role("region", name="Légende")
    expect(legend).to_contain_text("zone blanche de la période")
    expect(legend).to_contain_text("pas couverte depuis 28 jours")
    box = legend.bounding_box()
    assert box["y"] + box["height"] <= LAPTOP["height"] and box["y"] > 50
    expect(page.locator("#conn")).to_be_visible()
    panel = page.get_by_role("complementary", name="Panneau de coordination").bounding_box()
    assert panel["x"] + panel["width"] <= LAPTOP["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    page.screenshot(path=artifact_path(request.node, "-carte"))

    # A white zone of the list: click, and the map zooms to it.
    zoom = page.evaluate("window.maraudes.map.getZoom()")
    items.first.locator(".white-zoom").click()
    page.wait_for_function(f"window.maraudes.map.getZoom() > {zoom}")


def test_an_assignment_made_on_the_map_is_saved_and_shown(request, scene, live_app, page):
    open_map(page, live_app)
    zone, nord = scene["zones"]["S03"], scene["nord"]

    zone_path(page, "S03").click()
    popup = page.locator(".zone-popup")
    expect(popup).to_contain_text("Bastille")
    expect(popup).to_contain_text("Aucune équipe cette nuit.")
    popup.get_by_label("Équipe").select_option(label="Nord 1 · Aurore")
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/assignments/") and r.request.method == "POST"
    ) as posted:
        popup.get_by_role("button", name="Affecter").click()
    assert posted.value.status == 201

    # Saved, and the zone wears the team's colour.
    assignment = Assignment.objects.get()
    assert (assignment.zone, assignment.team, assignment.day) == (zone, nord, scene["tonight"])
    path = zone_path(page, "S03")
    expect(path).to_have_class(re.compile(r"\bis-assigned\b"))
    expect(path).to_have_attribute("stroke", "#d62728")
    expect(path).to_have_attribute("fill", "#d62728")
    expect(page.locator("#assignments-list")).to_contain_text("Nord 1")
    expect(popup.locator(".popup-teams")).to_contain_text("Nord 1")

    # The same zone to a second team: a double booking, flagged in the list and on the map.
    popup.get_by_label("Équipe").select_option(label="Solidarité 1 · Emmaüs")
    popup.get_by_role("button", name="Affecter").click()
    conflicts = page.locator("#conflicts")
    expect(conflicts).to_contain_text("« Bastille » (S03) est donnée à 2 équipes")
    expect(path).to_have_class(re.compile(r"\bis-double\b"))
    expect(page.locator(".flag-double")).to_have_text("2 équipes")
    page.screenshot(path=artifact_path(request.node, "-conflit"))

    # Taken back from the panel: the conflict goes away.
    page.get_by_role("button", name="Retirer Bastille à Solidarité 1").click()
    expect(conflicts).not_to_contain_text("Bastille")
    expect(path).not_to_have_class(re.compile(r"\bis-double\b"))
    assert Assignment.objects.count() == 1


def test_a_refusal_is_shown_in_the_popup(scene, live_app, page):
    open_map(page, live_app)
    # The zone was given to Nord 1 behind the page's back (no event: straight in the
    # database): the page offers Nord 1, and the server refuses the double with its reason.
    nord = scene["nord"]
    Assignment.objects.create(zone=scene["zones"]["S02"], team=nord, day=scene["tonight"])

    zone_path(page, "S02").click()
    popup = page.locator(".zone-popup")
    popup.get_by_label("Équipe").select_option(label="Nord 1 · Aurore")
    popup.get_by_role("button", name="Affecter").click()

    expect(popup.get_by_role("alert")).to_contain_text("est déjà affectée à Nord 1")
    assert Assignment.objects.count() == 1


def test_without_the_live_feed_the_map_says_so_and_still_works(request, scene, live_app, page):
    # A server whose websocket refuses every connection (or a proxy that drops them).
    attempts: list[str] = []

    def refuse(ws):
        attempts.append(ws.url)
        ws.close(code=1011)

    page.route_web_socket(re.compile(r"/ws/live/"), refuse)
    open_map(page, live_app)

    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    expect(page.locator("#conn")).to_contain_text("Déconnecté")
    expect(page.locator("path.zone")).to_have_count(6)
    expect(marker(page, scene["nord"].pk)).to_be_visible()
    page.wait_for_function("window.maraudes.state.retry >= 2", timeout=10_000)
    assert len(attempts) >= 2  # it keeps trying, waiting longer each time
    page.screenshot(path=artifact_path(request.node, "-deconnecte"))


# --- Live: needs /ws/live/ ----------------------------------------------------------------


@needs_live_feed
def test_fixes_posted_through_the_api_move_the_marker_without_reload(scene, live_app, page):
    open_map(page, live_app)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SLOW)
    nord, last = scene["nord"], scene["last"]
    wait_for_marker_at(page, nord.pk, last.lon, last.lat)
    page.evaluate("window.__sameDocument = true")

    lon, lat = lonlat(652_900, 6_862_600)
    assert post_fixes(live_app, scene["nadia"], scene["shift"], [(lon, lat)])["accepted"] == 1

    wait_for_marker_at(page, nord.pk, lon, lat)
    assert page.evaluate("window.__sameDocument === true")  # moved, not reloaded
    expect(page.locator("#teams-list")).to_contain_text("Nord 1")


@needs_live_feed
def test_an_assignment_made_in_one_browser_appears_in_another(
    request, scene, live_app, browser, page
):
    other = browser.new_context(base_url=live_app, locale="fr-FR", viewport=LAPTOP)
    try:
        second = other.new_page()
        open_map(page, live_app)
        open_map(second, live_app)
        for p in (page, second):
            expect(p.locator("#conn")).to_have_attribute("data-state", "live", timeout=SLOW)

        zone_path(page, "S05").click()
        page.locator(".zone-popup").get_by_label("Équipe").select_option(
            label="Solidarité 1 · Emmaüs"
        )
        page.locator(".zone-popup").get_by_role("button", name="Affecter").click()

        path = zone_path(second, "S05")
        expect(path).to_have_class(re.compile(r"\bis-assigned\b"))
        expect(path).to_have_attribute("stroke", "#1f77b4")
        expect(second.locator("#assignments-list")).to_contain_text("Solidarité 1")
        second.screenshot(path=artifact_path(request.node, "-second"))

        # And taken back in the second, it goes from the first.
        second.get_by_role("button", name="Retirer Panthéon à Solidarité 1").click()
        expect(zone_path(page, "S05")).not_to_have_class(re.compile(r"\bis-assigned\b"))
    finally:
        other.close()


@needs_live_feed
def test_after_a_cut_the_map_catches_up_with_what_it_missed(scene, live_app, page):
    sockets: list = []
    urls: list[str] = []
    cut = {"on": False}

    def through(ws):
        urls.append(ws.url)
        if cut["on"]:
            ws.close(code=1001)
            return
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/live/"), through)
    open_map(page, live_app)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SLOW)
    nord = scene["nord"]

    # The lid closes: the socket drops, and cannot come back for now.
    cut["on"] = True
    for ws in sockets:
        ws.close(code=1001)
    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")

    lon, lat = lonlat(652_950, 6_862_700)
    post_fixes(live_app, scene["nadia"], scene["shift"], [(lon, lat)])
    page.wait_for_timeout(300)
    assert float(marker(page, nord.pk).get_attribute("data-lon")) != lon  # not live any more

    # The lid opens: the page reconnects with ?since= and applies what it missed.
    cut["on"] = False
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SLOW)
    wait_for_marker_at(page, nord.pk, lon, lat)
    assert re.search(r"since=\d+", urls[-1]), urls


@needs_live_feed
def test_events_that_arrive_while_the_layers_load_are_applied_after(scene, live_app, page):
    # Hold the slowest layer: the page has subscribed and is still fetching.
    held: list = []
    block_tiles(page, live_app)
    page.route(re.compile(r"/api/v1/staleness/"), lambda route: held.append(route))
    page.goto("/connexion/?next=/carte/")
    page.get_by_label("Identifiant").fill("nadia")
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=SLOW)
    page.wait_for_function("window.maraudes && window.maraudes.state.firstLoadStarted")
    expect(page.locator("#teams-list")).to_contain_text("Nord 1", timeout=SLOW)
    nord, last = scene["nord"], scene["last"]
    wait_for_marker_at(page, nord.pk, last.lon, last.lat)
    assert len(held) == 1

    lon, lat = lonlat(652_990, 6_862_650)
    post_fixes(live_app, scene["nadia"], scene["shift"], [(lon, lat)])
    page.wait_for_function("window.maraudes.state.buffer.length > 0", timeout=10_000)
    assert float(marker(page, nord.pk).get_attribute("data-lon")) == last.lon  # held back

    held[0].continue_()  # the fetch ends: what was buffered is applied, once
    wait_for_marker_at(page, nord.pk, lon, lat)
    assert page.evaluate("window.maraudes.state.buffer.length") == 0
    assert page.evaluate("window.maraudes.state.loadedOnce")
