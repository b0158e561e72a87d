"""/rapports/: the planner's weekly report page, as HTML (test client) and in Chromium."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from maraudes.models import Role
from tests.browser.harness import ARTIFACTS, artifact_path
from tests.factories import TeamFactory, user_with_role
from tests.support.reports import make_week47
from zones.reports import week_current, week_last_complete

# Printable width of an A4 page with the stylesheet's 10 mm side margins, in CSS pixels.
A4_PRINTABLE_PX = round((210 - 20) / 25.4 * 96)


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(user_with_role(role))
    return client


def row_html(html: str, code: str) -> str:
    match = re.search(rf'<tr data-code="{code}">(.*?)</tr>', html, re.S)
    assert match, f"no row for zone {code}"
    return match[1]


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(db):
    response = Client().get("/rapports/?week=2026-W47")

    assert response.status_code == 302
    assert response["Location"] == "/connexion/?next=/rapports/%3Fweek%3D2026-W47"


def test_field_members_get_a_french_403_page(db):
    member = user_with_role(Role.FIELD, team=TeamFactory())
    client = Client()
    client.force_login(member)

    response = client.get("/rapports/")

    assert response.status_code == 403
    assert "réservés aux planificateurs et à la coordination" in response.content.decode()


# --- Content --------------------------------------------------------------------------------


def test_a_planner_sees_the_week_in_french_with_small_counts_hidden(week47):
    response = client_for(Role.PLANNER).get("/rapports/?week=2026-W47&kind=quartier")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert "Semaine 47 de 2026" in html
    assert "du lundi 16 novembre au dimanche 22 novembre 2026" in html
    assert "Quartiers (3 zones)" in html
    one = row_html(html, "1")
    assert "Saint-Germain-l&#x27;Auxerrois" in one and "mar 17 nov" in one
    two = row_html(html, "2")
    # One person met in zone 2: "<3", and nothing in the page tells 1 from 2.
    assert two.count("&lt;3") == 2
    assert "screen-only" not in html
    assert 'data-sort="1">&lt;3' in two
    assert "Zones blanches de la semaine" in html and 'id="report-map"' in html
    assert "Présence par heure de la nuit" in html
    assert html.count('class="trend-point') == 8


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_report_loads_the_scripts_catalog_of_its_language_before_its_script(week47, lang):
    html = (
        client_for(Role.PLANNER)
        .get("/rapports/?week=2026-W47", HTTP_ACCEPT_LANGUAGE=lang)
        .content.decode()
    )

    catalog = html.index(f'<script src="/i18n/js/{lang}/"></script>')
    assert catalog < html.index("frontend/reports.js")


def test_a_coordinator_sees_exact_figures_on_screen_and_hidden_ones_on_paper(week47):
    html = client_for(Role.COORDINATOR).get("/rapports/?week=2026-W47").content.decode()

    two = row_html(html, "2")
    assert '<span class="screen-only">1</span><span class="print-only">&lt;3</span>' in two
    assert "Vous voyez les effectifs exacts" in html


def test_the_page_links_to_the_exports_of_the_same_week(week47):
    html = client_for(Role.PLANNER).get("/rapports/?week=2026-W47&kind=quartier").content.decode()

    base = "/api/v1/reports/weekly/?week=2026-W47&amp;kind=quartier"
    assert f'href="{base}&amp;format=csv&amp;dialect=excel-fr"' in html
    assert f'href="{base}&amp;format=csv"' in html
    assert (
        'href="/api/v1/reports/weekly/white-zones/?week=2026-W47&amp;kind=quartier" '
        'download="zones-blanches-2026-W47-quartier.geojson"'
    ) in html
    assert "data-print" in html


def test_the_default_is_the_last_complete_week_of_quartiers(week47):
    html = client_for(Role.PLANNER).get("/rapports/").content.decode()

    week = week_last_complete()
    assert f"Semaine {week.week} de {week.year}" in html
    assert f'<option value="{week}" selected>' in html
    assert '<option value="quartier" selected>Quartiers</option>' in html


def test_an_empty_week_shows_zeros(week47):
    response = client_for(Role.PLANNER).get("/rapports/?week=2026-W40&kind=quartier")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Aucune rencontre enregistrée cette semaine." in html
    assert re.search(r'<span class="kpi-value">0\xa0%</span>', html)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("week=2026-W54", "L&#x27;année 2026 compte 53 semaines ISO"),
        ("week=last", "« last » n&#x27;est pas une semaine ISO"),
        ("kind=galaxie", "Aucune zone de type « galaxie »"),
    ],
)
def test_bad_input_gets_a_french_message(week47, query, says):
    response = client_for(Role.PLANNER).get(f"/rapports/?{query}")

    assert response.status_code == 400
    html = response.content.decode()
    assert f'<p class="error" role="alert">{says}' in html
    assert 'id="report-week"' in html  # the form is there to try again


def test_a_week_in_the_future_gets_a_french_message(week47):
    future = week_current().shifted(2)

    response = client_for(Role.PLANNER).get(f"/rapports/?week={future}")

    assert response.status_code == 400
    assert "n&#x27;a pas encore commencé" in response.content.decode()


# --- In Chromium ----------------------------------------------------------------------------


# Data fixtures come before `page` in the tests' arguments: the rows are written before
# Playwright starts its event loop in this thread (the services' realtime sends need none).
@pytest.fixture
def browser_week47(live_app):
    make_week47()
    return user_with_role(Role.PLANNER, username="claire")


@pytest.fixture
def coordinator_week47(live_app):
    make_week47()
    return user_with_role(Role.COORDINATOR, username="nadia")


def log_in(page, username: str) -> None:
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()


def tiles_unreachable(page) -> None:
    """As on an offline LAN: every tile request fails; the page must not care."""
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())


def zone_codes(page) -> list[str]:
    return page.locator("#report-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.code)"
    )


@pytest.mark.browser
def test_a_planner_picks_a_week_sorts_by_white_area_and_sees_the_map(
    request, live_app, browser_week47, page
):
    tiles_unreachable(page)
    page.goto("/rapports/")
    expect(page).to_have_url(re.compile(r"/connexion/\?next=/rapports/"))
    log_in(page, "claire")
    expect(page).to_have_url(f"{live_app}/rapports/")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Semaine {week_last_complete().week} de {week_last_complete().year}"
    )

    page.get_by_label("Semaine", exact=True).select_option("2026-W47")
    page.get_by_label("Zones", exact=True).select_option("quartier")
    page.get_by_role("button", name="Afficher").click()

    expect(page).to_have_url(f"{live_app}/rapports/?week=2026-W47&kind=quartier")
    expect(page.get_by_role("heading", level=1)).to_have_text("Semaine 47 de 2026")
    assert zone_codes(page) == ["1", "2", "10"]

    white = page.get_by_role("button", name="Non couvert (ha)")
    white.click()
    header = page.locator("#report-table thead th").filter(has=white)
    expect(header).to_have_attribute("aria-sort", "descending")
    assert zone_codes(page) == ["10", "2", "1"]
    expect(page.locator("#sort-status")).to_have_text("Trié par « Non couvert (ha) », décroissant.")
    white.click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert zone_codes(page) == ["1", "2", "10"]
    page.get_by_role("button", name="Non couvert (ha)").click()

    box = page.locator("#report-map-box")
    expect(box).to_have_attribute("data-state", "ready")
    expect(box).to_have_attribute("data-features", "3")
    box.scroll_into_view_if_needed()
    # Three white parts and four zone outlines drawn as vectors, with no tile at all.
    expect(page.locator("#report-map .leaflet-overlay-pane path")).to_have_count(6)
    expect(page.locator("#report-map-count")).to_have_text("3 zones ont une partie non couverte.")
    expect(page.locator("#report-map-tiles")).to_contain_text("Fond de carte injoignable")
    page.locator("#report-map .leaflet-overlay-pane path").nth(3).click(force=True)
    expect(page.locator(".leaflet-popup-content")).to_contain_text("Non couvert")
    page.screenshot(path=artifact_path(request.node, "-carte"))

    expect(page.locator("svg.trend circle")).to_have_count(8)
    expect(page.locator("tr[data-code='2'] td").last).to_have_text("<3")


@pytest.mark.browser
def test_the_printed_report_fits_an_a4_page(request, live_app, browser_week47, page):
    tiles_unreachable(page)
    page.goto("/connexion/?next=/rapports/%3Fweek%3D2026-W47%26kind%3Dquartier")
    log_in(page, "claire")
    expect(page.locator("#report-map-box")).to_have_attribute("data-state", "ready")

    page.set_viewport_size({"width": A4_PRINTABLE_PX, "height": 1000})
    page.emulate_media(media="print")

    assert page.evaluate("document.documentElement.scrollWidth") <= A4_PRINTABLE_PX
    for selector in (".topbar", ".report-form", ".exports", ".week-nav"):
        expect(page.locator(selector)).to_be_hidden()
    for selector in ("#report-table", "#report-map-box", "svg.trend", ".night-table"):
        element = page.locator(selector)
        expect(element).to_be_visible()
        assert element.bounding_box()["width"] <= A4_PRINTABLE_PX
    expect(page.locator("p.print-head")).to_contain_text("rapport hebdomadaire de couverture")
    page.screenshot(path=artifact_path(request.node, "-impression"), full_page=True)

    pdf = page.pdf(format="A4", print_background=True)
    (ARTIFACTS / "rapport-hebdomadaire.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    assert re.search(rb"/MediaBox \[0 0 59[45]\.?\d* 84[12]", pdf), "not an A4 page"


@pytest.mark.browser
def test_a_coordinator_prints_small_counts_hidden(live_app, coordinator_week47, page):
    tiles_unreachable(page)
    page.goto("/connexion/?next=/rapports/%3Fweek%3D2026-W47")
    log_in(page, "nadia")
    people = page.locator("tr[data-code='2'] td").last

    expect(people).to_have_text("1", use_inner_text=True)
    page.emulate_media(media="print")
    expect(people).to_have_text("<3", use_inner_text=True)
