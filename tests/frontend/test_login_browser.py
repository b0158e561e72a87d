import re

import pytest
from playwright.sync_api import expect

from tests.browser.harness import artifact_path
from tests.factories import ZoneFactory, tile, user_with_role

# The home page itself: without the main screens a coordinator would land on /carte/.
pytestmark = [pytest.mark.browser, pytest.mark.urls("tests.frontend.urls_without_screens")]


@pytest.fixture
def nadia():
    user = user_with_role("coordinator", username="nadia")
    user.first_name, user.last_name = "Nadia", "Benali"
    user.save(update_fields=["first_name", "last_name"])
    return user


def log_in(page, username: str, password: str) -> None:
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()


def test_it_takes_a_person_from_the_login_page_to_their_home_page(request, live_app, page, nadia):
    page.goto("/")

    # Sent to the French login page, coming back to / afterwards.
    expect(page).to_have_url(f"{live_app}/connexion/?next=/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page).to_have_title(re.compile("^Connexion"))
    expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    expect(page.get_by_label("Identifiant")).to_be_focused()
    expect(page.get_by_label("Mot de passe")).to_be_visible()
    page.screenshot(path=artifact_path(request.node, "-1-connexion"))

    log_in(page, "nadia", "pas-le-bon")

    expect(page.get_by_role("alert")).to_have_text("Identifiant ou mot de passe incorrect.")
    expect(page.get_by_label("Identifiant")).to_have_value("nadia")
    expect(page.get_by_label("Mot de passe")).to_have_value("")
    expect(page.get_by_label("Mot de passe")).to_be_focused()
    page.screenshot(path=artifact_path(request.node, "-2-erreur"))

    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()

    expect(page).to_have_url(f"{live_app}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bonjour Nadia Benali")
    expect(page.locator(".who")).to_have_text("Nadia Benali")
    expect(page.get_by_text("coordinateur")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Documentation de l'API"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Zones"))).to_be_visible()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()


def test_it_says_the_same_thing_for_an_unknown_user(live_app, page, nadia):
    page.goto("/connexion/")

    log_in(page, "personne", "secret-pass-123")

    expect(page.get_by_role("alert")).to_have_text("Identifiant ou mot de passe incorrect.")


def test_it_logs_out_back_to_the_login_page(live_app, page, nadia):
    page.goto("/connexion/")
    log_in(page, "nadia", "secret-pass-123")
    expect(page).to_have_url(f"{live_app}/")

    page.get_by_role("button", name="Se déconnecter").click()

    expect(page).to_have_url(f"{live_app}/connexion/")
    page.goto("/")
    expect(page).to_have_url(f"{live_app}/connexion/?next=/")


FETCH_ZONES = """async (url) => {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    return {status: response.status, body: await response.json()};
}"""


def test_it_serves_the_zones_api_to_the_logged_in_browser(live_app, page, nadia):
    ZoneFactory(code="7510413", name="Notre-Dame", kind="quartier", geom=tile(0, 0))
    page.goto("/connexion/")

    anonymous = page.evaluate(FETCH_ZONES, "/api/v1/zones/")
    assert anonymous["status"] == 401

    log_in(page, "nadia", "secret-pass-123")
    expect(page).to_have_url(f"{live_app}/")
    answer = page.evaluate(FETCH_ZONES, "/api/v1/zones/?kind=quartier&bbox=2.3,48.8,2.4,48.9")

    assert answer["status"] == 200
    (feature,) = answer["body"]["features"]
    assert feature["properties"]["name"] == "Notre-Dame"
    lon, lat = feature["geometry"]["coordinates"][0][0][0]
    assert 2.34 < lon < 2.37
    assert 48.85 < lat < 48.87


def test_it_fits_a_phone_screen(request, live_app, browser, nadia):
    # Team members log in at night on a phone: no sideways scrolling, thumb-sized button.
    context = browser.new_context(
        base_url=live_app,
        locale="fr-FR",
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone = context.new_page()
    try:
        phone.goto("/connexion/")
        button = phone.get_by_role("button", name="Se connecter")
        assert button.bounding_box()["height"] >= 44
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=artifact_path(request.node, "-connexion"))

        log_in(phone, "nadia", "secret-pass-123")
        expect(phone.get_by_role("heading", level=1)).to_have_text("Bonjour Nadia Benali")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=artifact_path(request.node), full_page=True)
    finally:
        context.close()
