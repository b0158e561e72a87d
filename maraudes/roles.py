"""Who may see what. Roles come from memberships; a Django superuser counts as an admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from maraudes.models import Membership, Role

AnyUser = AbstractBaseUser | AnonymousUser

COORDINATION = frozenset({Role.ADMIN, Role.COORDINATOR})
AGGREGATES = frozenset({Role.ADMIN, Role.COORDINATOR, Role.PLANNER})


def user_roles(user: AnyUser) -> frozenset[str]:
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_maraudes_roles", None)
    if cached is not None:
        return cached
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    if user.is_superuser:
        roles.add(Role.ADMIN)
    result = frozenset(roles)
    user._maraudes_roles = result  # type: ignore[union-attr]
    return result


def user_has_role(user: AnyUser, roles: frozenset[str] | set[str]) -> bool:
    return bool(user_roles(user) & set(roles))


def user_team_ids(user: AnyUser) -> set[int]:
    """Teams the user goes out with (field memberships)."""
    if not user.is_authenticated:
        return set()
    return set(
        Membership.objects.filter(user=user, team__isnull=False).values_list("team_id", flat=True)
    )


def user_home_path(user: AnyUser) -> str:
    """Where a person lands after logging in: their main screen ("/" for someone with no
    role yet, who is told whom to ask)."""
    roles = user_roles(user)
    if roles & COORDINATION:
        return "/carte/"
    if Role.PLANNER in roles:
        return "/rapports/"
    if Role.FIELD in roles:
        return "/equipe/"
    return "/"
