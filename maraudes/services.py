"""Writes of the outreach domain. Each service validates, owns its transaction, and is
callable from a shell, a command or a test without HTTP."""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from maraudes.models import Organization, Team, TeamMode


def organization_create(*, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Le nom est obligatoire.")})
    if Organization.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": _("Une structure porte déjà ce nom.")})
    return Organization.objects.create(name=name)


def team_create(
    *,
    organization: Organization,
    name: str,
    mode: str = TeamMode.FOOT,
    coverage_radius_m: float | None = None,
    color: str | None = None,
) -> Team:
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Le nom est obligatoire.")})
    team = Team(
        organization=organization,
        name=name,
        mode=mode,
        coverage_radius_m=coverage_radius_m,
        color=color or _team_default_color(organization, name),
    )
    team.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            team.save()
    except IntegrityError:
        raise ValidationError(
            {"name": _("Cette structure a déjà une équipe nommée « %(name)s ».") % {"name": name}}
        ) from None
    return team


_PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
]  # fmt: skip


def _team_default_color(organization: Organization, name: str) -> str:
    digest = hashlib.sha256(f"{organization.pk}:{name}".encode()).digest()
    return _PALETTE[digest[0] % len(_PALETTE)]


def tracker_token_new() -> tuple[str, str]:
    """A long unguessable token for background trackers, and the hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, tracker_token_hash(token)


def tracker_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
