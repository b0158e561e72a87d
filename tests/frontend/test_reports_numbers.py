"""The report's numbers: rounded (not cut) and written as the page's language writes them."""

from __future__ import annotations

import pytest
from django.utils import translation

from frontend.reports import num


@pytest.mark.parametrize(
    ("language", "value", "digits", "shown"),
    [
        ("fr", 2.97, 1, "3,0"),
        ("fr", 0.96, 1, "1,0"),
        ("en", 1234.56, 1, "1,234.6"),
        ("en", 99.6, 0, "100"),
    ],
)
def test_numbers_are_rounded_in_the_language(language, value, digits, shown):
    with translation.override(language):
        assert num(value, digits) == shown
