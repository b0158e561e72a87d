"""Query-string parsing shared by the read endpoints: unknown names and bad kinds are 400s."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from zones.selectors import zone_kinds


def reject_unknown_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed - {"format"})
    if unknown:
        raise ValidationError({name: ["Paramètre inconnu."] for name in unknown})


def zone_kind_param(request: Request) -> str | None:
    kind = request.query_params.get("kind") or None
    if kind is not None:
        known = zone_kinds()
        if kind not in known:
            raise ValidationError(
                {
                    "kind": [
                        f"Aucune zone de type « {kind} ». "
                        f"Types connus : {', '.join(known) or 'aucun'}."
                    ]
                }
            )
    return kind
