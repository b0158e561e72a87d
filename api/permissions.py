from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from maraudes.models import Role
from maraudes.roles import AGGREGATES, COORDINATION, user_has_role

ADMINS = frozenset({Role.ADMIN})


class IsCoordination(BasePermission):
    """Admins and coordinators (and Django superusers)."""

    message = _("Réservé à la coordination (rôle administrateur ou coordinateur).")

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, COORDINATION)


class SeesAggregates(BasePermission):
    """Admins, coordinators and planners."""

    message = _("Réservé à la coordination et aux planificateurs.")

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, AGGREGATES)


class IsAdminRole(BasePermission):
    """Administrators (an `admin` membership, or a Django superuser)."""

    message = _("Réservé aux administrateurs.")

    def has_permission(self, request, view) -> bool:
        return user_has_role(request.user, ADMINS)
