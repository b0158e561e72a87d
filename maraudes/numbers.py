"""Numbers in sentences and pages, written as the active language writes them."""

from __future__ import annotations

from django.utils import formats


def local_number(value: float, digits: int = 0, *, grouping: bool = False) -> str:
    """`value` with `digits` decimals in the active language (3,2 in French, 3.2 in English),
    thousands separated when `grouping`. Rounded first: number_format alone cuts the digits
    beyond decimal_pos (0.96 would read 0,9)."""
    return formats.number_format(
        round(value, digits), decimal_pos=digits, use_l10n=True, force_grouping=grouping
    )
