# The browser fixtures live with the browser harness; frontend tests drive pages with them.
from tests.browser.conftest import (  # noqa: F401
    browser,
    browser_context_args,
    live_app,
    page,
    playwright,
)
