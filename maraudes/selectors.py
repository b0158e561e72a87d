"""Reads of the outreach domain."""

from __future__ import annotations

from django.db.models import QuerySet

from maraudes.models import Organization, Shift, Team
from maraudes.roles import AGGREGATES, AnyUser, user_has_role, user_team_ids


def teams_visible_to(user: AnyUser) -> QuerySet[Team]:
    teams = Team.objects.select_related("organization").order_by("organization__name", "name")
    if user_has_role(user, AGGREGATES):
        return teams
    return teams.filter(id__in=user_team_ids(user))


def organizations_visible_to(user: AnyUser) -> QuerySet[Organization]:
    if user_has_role(user, AGGREGATES):
        return Organization.objects.order_by("name")
    return Organization.objects.filter(teams__id__in=user_team_ids(user)).distinct().order_by("name")


def shifts_visible_to(user: AnyUser) -> QuerySet[Shift]:
    shifts = Shift.objects.select_related("team", "team__organization")
    if user_has_role(user, AGGREGATES):
        return shifts
    return shifts.filter(team_id__in=user_team_ids(user))
