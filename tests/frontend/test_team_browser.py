"""The team app on a phone-sized Chromium with emulated geolocation: check in, walk, log an
encounter with the network off, come back, and find everything stored once on the server."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.utils import timezone
from playwright.sync_api import expect

from maraudes.days import service_day
from maraudes.models import Encounter, Position, Role, Shift
from maraudes.services import tracker_token_hash
from tests.browser.harness import artifact_path, log_in_by_cookie
from tests.factories import TeamFactory, ZoneFactory, user_with_role
from zones.models import Assignment, ZoneDayCoverage

pytestmark = pytest.mark.browser

NOTRE_DAME = {"latitude": 48.8530, "longitude": 2.3499, "accuracy": 8}
PHONE = {"width": 360, "height": 640}
SENT = "Tout est envoyé"

READ_SHIFT = """async () => {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open("maraudes-equipe");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const get = (store, key) => new Promise((resolve, reject) => {
    const request = db.transaction(store).objectStore(store).get(key);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const current = await get("meta", "current");
  return current && current.value ? await get("shifts", current.value) : null;
}"""


@pytest.fixture
def team(transactional_db):
    return TeamFactory(name="Nord 1", organization__name="Association Nord")


@pytest.fixture
def amina(team):
    user = user_with_role(Role.FIELD, team=team, username="amina")
    user.first_name = "Amina"
    user.save(update_fields=["first_name"])
    return user


@pytest.fixture
def notre_dame(team):
    polygon = Polygon.from_bbox((2.344, 48.849, 2.356, 48.857))
    polygon.srid = 4326
    polygon.transform(2154)
    zone = ZoneFactory(code="ND", name="Notre-Dame", kind="quartier", geom=MultiPolygon(polygon))
    Assignment.objects.create(zone=zone, team=team, day=service_day(timezone.now()))
    return zone


def phone_context(browser, live_app: str, locale: str = "fr-FR"):
    context = browser.new_context(
        base_url=live_app,
        locale=locale,
        timezone_id="Europe/Paris",
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        geolocation=NOTRE_DAME,
        permissions=["geolocation"],
    )
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def phone(browser, live_app):
    context = phone_context(browser, live_app)
    yield context
    context.close()


def log_in(page, live_app):
    page.goto("/equipe/")
    expect(page).to_have_url(f"{live_app}/connexion/?next=/equipe/")
    page.get_by_label("Identifiant").fill("amina")
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(f"{live_app}/equipe/")


def fits_the_screen(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def in_viewport(locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]


def walk(phone, page, steps: int, start: dict, *, north_m: float = 3.3):
    """Move the emulated position `steps` times, about 3 m north a second (a walk)."""
    lat = start["latitude"]
    for _ in range(steps):
        lat += north_m / 111_320
        phone.set_geolocation({**start, "latitude": lat})
        page.wait_for_timeout(1000)
    return {**start, "latitude": lat}


def wait_for_service_worker(page):
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.controller !== null")


@pytest.mark.parametrize(
    ("locale", "sent", "offline"),
    [("en-GB", "✓ Everything sent", "Offline"), ("fr-FR", f"✓ {SENT}", "Hors ligne")],
    ids=["english", "french"],
)
def test_the_apps_script_speaks_the_language_of_the_phone_offline_too(
    request, live_app, browser, amina, notre_dame, locale, sent, offline
):
    """app.js writes the counter and the network pill from the scripts' catalog of the page's
    language; the service worker keeps that catalog, so a reload offline still speaks it."""
    context = phone_context(browser, live_app, locale)
    try:
        log_in_by_cookie(context, live_app, amina)
        page = context.new_page()
        page.goto("/equipe/")
        expect(page.locator("#pending")).to_have_text(sent)
        expect(page.locator("#start-zones")).to_contain_text("Notre-Dame")
        wait_for_service_worker(page)

        context.set_offline(True)
        page.reload()

        expect(page.locator("#net")).to_have_text(offline)
        expect(page.locator("#pending")).to_have_text(sent)
        page.screenshot(path=artifact_path(request.node))
    finally:
        context.close()


def test_a_shift_with_an_encounter_logged_offline(
    request, live_app, phone, team, amina, notre_dame
):
    shot = lambda name: page.screenshot(path=artifact_path(request.node, f"-{name}"))  # noqa: E731
    page = phone.new_page()
    log_in(page, live_app)

    # 1. Before the shift: the team, tonight's zone, one big button.
    expect(page.get_by_role("heading", name="Bonjour Amina")).to_be_visible()
    expect(page.get_by_text("Nord 1")).to_be_visible()
    expect(page.locator("#start-zones")).to_contain_text("Notre-Dame")
    start = page.get_by_role("button", name="Démarrer la maraude")
    assert start.bounding_box()["height"] >= 72
    expect(page.locator("#pending")).to_have_text(f"✓ {SENT}")
    fits_the_screen(page)
    shot("1-accueil")

    # 2. Check-in: the second tap.
    start.click()
    expect(page.get_by_role("heading", name="En maraude")).to_be_visible()
    # The check-in reached the server when the Traccar card has the shift's identifier.
    expect(page.locator("#traccar-id")).not_to_be_empty()
    expect(page.locator("#pending")).to_contain_text(SENT)
    shift = Shift.objects.get(team=team)
    assert shift.ended_at is None and shift.started_by == amina
    wait_for_service_worker(page)

    # 3. Walk: each move of the emulated position is a fix.
    here = walk(phone, page, 6, NOTRE_DAME)
    expect(page.locator("#gps")).to_contain_text("Position partagée")
    expect(page.locator("#zones-assigned")).to_contain_text("Notre-Dame")
    for name in ("Rencontre", "Terminer"):
        button = page.get_by_role("button", name=name, exact=True)
        assert button.bounding_box()["height"] >= 56 and in_viewport(button)
    fits_the_screen(page)
    shot("2-en-maraude")

    # The Traccar Client card: server URL, identifier (the shift's token) and QR code.
    page.locator("#traccar summary").click()
    token = page.locator("#traccar-id")
    expect(token).not_to_be_empty()
    assert tracker_token_hash(token.text_content()) == shift.tracker_token_hash
    expect(page.locator("#traccar-url")).to_have_text(f"{live_app}/api/v1/track/")
    expect(page.locator("#traccar-qr svg")).to_be_visible()
    page.locator("#traccar-qr").scroll_into_view_if_needed()
    fits_the_screen(page)
    shot("3-traccar")
    page.locator("#traccar summary").click()

    # 4. The network drops: keep walking, log an encounter (three taps, plus details).
    phone.set_offline(True)
    expect(page.locator("#net")).to_have_text("Hors ligne")
    here = walk(phone, page, 3, here)
    page.get_by_role("button", name="Rencontre", exact=True).click()
    expect(page.get_by_role("heading", name="Rencontre")).to_be_visible()
    assert in_viewport(page.get_by_role("button", name="Enregistrer"))
    page.get_by_role("button", name="Une personne de plus").click()
    expect(page.locator("#people")).to_have_text("2")
    page.get_by_role("checkbox", name="Alimentation").check()
    page.get_by_role("checkbox", name="Hébergement / 115").check()
    page.get_by_role("checkbox", name="Boisson chaude").check()
    fits_the_screen(page)
    shot("4-rencontre")
    page.get_by_label("Note (facultative)").fill("A demandé une couverture.")
    expect(page.get_by_text("Jamais de nom")).to_be_visible()
    shot("4b-rencontre-note")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("heading", name="En maraude")).to_be_visible()
    expect(page.locator("#pending")).to_contain_text("1 rencontre")
    expect(page.locator("#pending")).to_contain_text("points GPS")
    shot("5-hors-ligne")
    assert not Encounter.objects.exists()

    # 5. Reloading offline loses nothing: the service worker serves the app, IndexedDB keeps
    # the outbox.
    page.reload()
    expect(page.get_by_role("heading", name="En maraude")).to_be_visible()
    expect(page.locator("#pending")).to_contain_text("1 rencontre")
    shot("6-recharge-hors-ligne")

    # 6. The network returns: everything is sent, once.
    phone.set_offline(False)
    expect(page.locator("#net")).to_have_text("En ligne")
    expect(page.locator("#pending")).to_have_text(f"✓ {SENT}", timeout=20_000)
    local = page.evaluate(READ_SHIFT)
    encounter = Encounter.objects.get()
    assert encounter.shift == shift
    assert encounter.people_count == 2
    assert encounter.needs == ["food", "shelter"] and encounter.actions == ["hot_drink"]
    assert encounter.note == "A demandé une couverture."
    stored = list(Position.objects.filter(shift=shift).values_list("recorded_at", flat=True))
    assert len(stored) == local["fix_count"] >= 9
    assert len(set(stored)) == len(stored)
    coverage = ZoneDayCoverage.objects.get(zone=notre_dame)
    assert coverage.covered_m2 > 20_000  # a 30 m walk with a 100 m radius: about 3.7 ha
    assert shift.pk in coverage.shift_ids

    # 7. Check-out: two taps, then the summary with the server's figures.
    page.get_by_role("button", name="Terminer", exact=True).click()
    expect(page.get_by_role("heading", name="Terminer la maraude ?")).to_be_visible()
    shot("7-terminer")
    page.locator("#end-confirm").click()
    expect(page.get_by_role("heading", name="Maraude terminée")).to_be_visible()
    expect(page.locator("#summary-figures")).to_contain_text("Notre-Dame")
    expect(page.locator("#summary-figures")).to_contain_text("1 (2 personnes)")
    fits_the_screen(page)
    shot("8-bilan")
    shift.refresh_from_db()
    assert shift.ended_at is not None
    assert Position.objects.filter(shift=shift).count() == local["fix_count"]
    assert Encounter.objects.count() == 1


def test_a_check_in_made_offline_is_sent_later_with_its_time(
    request, live_app, phone, team, amina, notre_dame
):
    page = phone.new_page()
    log_in(page, live_app)
    expect(page.get_by_role("button", name="Démarrer la maraude")).to_be_visible()
    page.wait_for_function("navigator.serviceWorker && navigator.serviceWorker.ready")

    phone.set_offline(True)
    page.get_by_role("button", name="Démarrer la maraude").click()
    expect(page.locator("#pending")).to_contain_text("le début de la maraude")
    walk(phone, page, 4, NOTRE_DAME)
    page.get_by_role("button", name="Rencontre", exact=True).click()
    page.get_by_role("checkbox", name="Santé", exact=True).check()
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#pending")).to_contain_text("1 rencontre")
    expect(page.locator("#traccar-wait")).to_contain_text("dès que la maraude sera enregistrée")
    page.screenshot(path=artifact_path(request.node, "-hors-ligne"))
    page.reload()
    expect(page.locator("#pending")).to_contain_text("le début de la maraude")
    assert not Shift.objects.exists()

    phone.set_offline(False)
    expect(page.locator("#pending")).to_have_text(f"✓ {SENT}", timeout=20_000)
    local = page.evaluate(READ_SHIFT)
    shift = Shift.objects.get()
    assert shift.pk == local["server_id"]
    assert shift.started_at == datetime.fromisoformat(local["started_at"])
    assert Position.objects.filter(shift=shift).count() == local["fix_count"] >= 4
    assert Encounter.objects.get().needs == ["health"]
    page.locator("#traccar summary").click()
    expect(page.locator("#traccar-id")).not_to_be_empty()


def test_a_lost_session_keeps_the_outbox_until_the_member_logs_in_again(
    request, live_app, phone, team, amina, notre_dame
):
    page = phone.new_page()
    log_in(page, live_app)
    page.get_by_role("button", name="Démarrer la maraude").click()
    expect(page.locator("#traccar-id")).not_to_be_empty()
    walk(phone, page, 2, NOTRE_DAME)

    phone.clear_cookies()  # the session is gone (expired, or logged out elsewhere)
    page.get_by_role("button", name="Rencontre", exact=True).click()
    page.get_by_role("checkbox", name="Hygiène", exact=True).check()
    page.get_by_role("button", name="Enregistrer").click()

    expect(page.get_by_role("alert")).to_contain_text("Session expirée")
    expect(page.locator("#pending")).to_contain_text("1 rencontre")
    page.screenshot(path=artifact_path(request.node, "-session"))
    assert not Encounter.objects.exists()

    page.get_by_role("link", name="Se reconnecter").click()
    page.get_by_label("Identifiant").fill("amina")
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(f"{live_app}/equipe/")
    expect(page.locator("#pending")).to_have_text(f"✓ {SENT}", timeout=20_000)
    assert Encounter.objects.get().needs == ["hygiene"]
