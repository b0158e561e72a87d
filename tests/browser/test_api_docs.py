import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_it_renders_the_api_docs_without_the_internet(live_app, page):
    outside = []

    def only_local(route):
        if route.request.url.startswith(live_app):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)

    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Maraudes API")
    expect(page.get_by_text("/api/v1/zones/", exact=True)).to_be_visible()
    assert outside == []
