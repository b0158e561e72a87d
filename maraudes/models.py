"""The outreach domain: organizations, teams, members, shifts, positions, encounters."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Organization(models.Model):
    name = models.CharField(_("nom"), max_length=200, unique=True)
    created_at = models.DateTimeField(_("créée le"), default=timezone.now)

    class Meta:
        verbose_name = _("structure")
        verbose_name_plural = _("structures")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMode(models.TextChoices):
    FOOT = "foot", _("à pied")
    VEHICLE = "vehicle", _("véhiculée")


class Team(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="teams", verbose_name=_("structure")
    )
    name = models.CharField(_("nom"), max_length=200)
    mode = models.CharField(_("mode"), max_length=10, choices=TeamMode, default=TeamMode.FOOT)
    coverage_radius_m = models.FloatField(
        _("rayon de couverture (m)"),
        null=True,
        blank=True,
        help_text=_("Vide : 100 m à pied, 50 m en véhicule."),
    )
    color = models.CharField(_("couleur"), max_length=7, default="#1f77b4")
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("équipe")
        verbose_name_plural = _("équipes")
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name"),
            models.CheckConstraint(
                condition=Q(coverage_radius_m__isnull=True) | Q(coverage_radius_m__gt=0),
                name="team_radius_positive",
            ),
            models.CheckConstraint(
                condition=Q(color__regex=r"^#[0-9a-fA-F]{6}$"), name="team_color_hex"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"

    @property
    def radius_m(self) -> float:
        """The coverage radius in metres: the team's own, else the mode's default."""
        if self.coverage_radius_m:
            return float(self.coverage_radius_m)
        if self.mode == TeamMode.VEHICLE:
            return settings.COVERAGE_RADIUS_VEHICLE
        return settings.COVERAGE_RADIUS_FOOT

    @property
    def max_speed(self) -> float:
        if self.mode == TeamMode.VEHICLE:
            return settings.MAX_SPEED_VEHICLE
        return settings.MAX_SPEED_FOOT


class Role(models.TextChoices):
    ADMIN = "admin", _("administrateur")
    COORDINATOR = "coordinator", _("coordinateur")
    PLANNER = "planner", _("planificateur")
    FIELD = "field", _("membre d'équipe")


class Membership(models.Model):
    """A user's role in an organization; a field member belongs to one team."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("utilisateur"),
    )
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("structure"),
    )
    role = models.CharField(_("rôle"), max_length=12, choices=Role)
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("équipe"),
    )

    class Meta:
        verbose_name = _("adhésion")
        verbose_name_plural = _("adhésions")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "team"],
                name="membership_unique",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=~Q(role="field") | Q(team__isnull=False),
                name="membership_field_has_team",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.team or self.organization}"

    def clean(self) -> None:
        if self.role == Role.FIELD and self.team_id is None:
            raise ValidationError({"team": _("Un membre d'équipe doit avoir une équipe.")})
        if self.team_id and self.team.organization_id != self.organization_id:
            raise ValidationError({"team": _("L'équipe n'appartient pas à cette structure.")})


class Shift(models.Model):
    """One team's outing, from check-in to check-out."""

    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="shifts", verbose_name=_("équipe")
    )
    started_at = models.DateTimeField(_("début"), db_index=True)
    ended_at = models.DateTimeField(_("fin"), null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("démarrée par"),
    )
    closed_automatically = models.BooleanField(_("fermée automatiquement"), default=False)
    # sha256 of the tracker token: the token itself is shown once, at check-in.
    tracker_token_hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        verbose_name = _("maraude")
        verbose_name_plural = _("maraudes")
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="shift_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["team", "-started_at"], name="shift_team_started")]

    def __str__(self) -> str:
        return f"{self.team.name} · {timezone.localtime(self.started_at):%d/%m %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class PositionSource(models.TextChoices):
    APP = "app", _("application")
    TRACCAR = "traccar", _("Traccar Client")
    OSMAND = "osmand", _("OsmAnd")
    GPX = "gpx", _("fichier GPX")
    API = "api", _("API")
    DEMO = "demo", _("démonstration")


class Position(models.Model):
    """One GPS fix, keyed by (shift, recorded_at): a resend is a duplicate, not a new fix.

    No surrogate id: the key is what every reader looks fixes up by, and a serial id was one
    more index write and sequence call per fix that nothing read (2 ms of the 10 that storing
    700 fixes took, measured). The key also holds recorded_at, as a table
    partitioned by month (DESIGN.md, "Scale") requires of it.
    """

    pk = models.CompositePrimaryKey("shift_id", "recorded_at")
    # No index of its own: the primary key (shift, recorded_at) serves lookups by shift, and
    # every index is one more write per fix. No foreign key constraint either: PostgreSQL
    # checks one row by row (a third of the cost of storing 1,000 fixes); triggers check the
    # same once per statement (migration 0005: position_shift_exists, shift_positions_exist).
    shift = models.ForeignKey(
        Shift,
        on_delete=models.CASCADE,
        related_name="positions",
        verbose_name=_("maraude"),
        db_index=False,
        db_constraint=False,
    )
    recorded_at = models.DateTimeField(_("heure du point"))
    received_at = models.DateTimeField(_("reçu le"), default=timezone.now)
    # No spatial index: raw fixes are read per shift in time order, never searched by place.
    point = models.PointField(_("point"), srid=settings.SRID, spatial_index=False)
    accuracy = models.FloatField(_("précision (m)"))
    speed = models.FloatField(_("vitesse (m/s)"), null=True, blank=True)
    heading = models.FloatField(_("cap (°)"), null=True, blank=True)
    source = models.CharField(
        _("source"), max_length=10, choices=PositionSource, default=PositionSource.API
    )

    class Meta:
        verbose_name = _("point GPS")
        verbose_name_plural = _("points GPS")
        constraints = [
            models.CheckConstraint(condition=Q(accuracy__gte=0), name="position_accuracy_pos"),
        ]
        # For the purge and a rebuild over days, which read whole ranges of time. A block
        # range index: fixes arrive in about the order of their time, so it stays selective,
        # and storing a fix costs it next to nothing, where a B-tree cost a write per fix.
        indexes = [
            BrinIndex(fields=["recorded_at"], name="position_recorded_at_brin", autosummarize=True)
        ]

    def __str__(self) -> str:
        return f"{self.shift_id} @ {self.recorded_at:%Y-%m-%d %H:%M:%S}"


class Need(models.TextChoices):
    """Needs, after the themes of the Pacte parisien de lutte contre la grande exclusion."""

    FOOD = "food", _("alimentation")
    SHELTER = "shelter", _("hébergement / 115")
    HEALTH = "health", _("santé")
    MENTAL_HEALTH = "mental_health", _("santé mentale")
    ADDICTION = "addiction", _("addictions")
    HYGIENE = "hygiene", _("hygiène")
    CLOTHING = "clothing", _("vêtements")
    RIGHTS = "rights", _("accès aux droits / papiers")
    FAMILY = "family", _("famille avec enfants")
    PREGNANCY = "pregnancy", _("grossesse")
    YOUTH = "youth", _("jeunes")
    SOCIAL_CONTACT = "social_contact", _("lien social")


class Action(models.TextChoices):
    TALK = "talk", _("échange, lien")
    FOOD = "food", _("distribution alimentaire")
    HOT_DRINK = "hot_drink", _("boisson chaude")
    HYGIENE_KIT = "hygiene_kit", _("kit d'hygiène")
    CLOTHING = "clothing", _("vêtements, couverture")
    CARE = "care", _("soins")
    CALL_115 = "call_115", _("appel au 115")
    EMERGENCY = "emergency", _("appel aux secours (15, 18, 112)")
    ORIENTATION = "orientation", _("orientation vers un service")
    ACCOMPANIMENT = "accompaniment", _("accompagnement")


class Encounter(models.Model):
    """A meeting with one or more people. Counts and categories only: never a name."""

    client_id = models.UUIDField(_("identifiant client"), unique=True, default=uuid.uuid4)
    shift = models.ForeignKey(
        Shift, on_delete=models.PROTECT, related_name="encounters", verbose_name=_("maraude")
    )
    seen_at = models.DateTimeField(_("heure"), db_index=True)
    point = models.PointField(_("lieu"), srid=settings.SRID)
    people_count = models.PositiveSmallIntegerField(_("nombre de personnes"), default=1)
    needs = ArrayField(
        models.CharField(max_length=20, choices=Need),
        default=list,
        blank=True,
        verbose_name=_("besoins"),
    )
    actions = ArrayField(
        models.CharField(max_length=20, choices=Action),
        default=list,
        blank=True,
        verbose_name=_("actions"),
    )
    note = models.CharField(
        _("note"),
        max_length=280,
        blank=True,
        help_text=_("Courte, jamais de nom ni d'élément permettant d'identifier la personne."),
    )
    created_at = models.DateTimeField(_("enregistrée le"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("saisie par"),
    )

    class Meta:
        verbose_name = _("rencontre")
        verbose_name_plural = _("rencontres")
        ordering = ["-seen_at"]
        constraints = [
            models.CheckConstraint(condition=Q(people_count__gte=1), name="encounter_people_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.people_count} · {timezone.localtime(self.seen_at):%d/%m %H:%M}"


class Event(models.Model):
    """An event sent to live clients, stored first: its `seq` is what a client that
    reconnects gives back (`?since=`) to receive what it missed."""

    seq = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    type = models.CharField(max_length=40)
    # The team the event concerns, for the team feeds and position coalescing.
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Sent to that team's feed too (assignments, alerts), not only to the coordination.
    to_team = models.BooleanField(default=False)
    data = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("événement")
        verbose_name_plural = _("événements")
        indexes = [
            models.Index(fields=["team", "type", "-created_at"], name="event_team_type_recent"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    def as_message(self) -> dict:
        return {"seq": self.seq, "type": self.type, **self.data}


class CoverageBacklog(models.Model):
    """A stored fix whose coverage is not computed yet: tracker requests only store their
    points and queue them here, in the same transaction; zones.catchup drains the queue in
    batches across shifts. The fix itself stays in maraudes_position (read by its key)."""

    # The unique (shift, recorded_at) index serves the cascade: no index of its own.
    shift = models.ForeignKey(Shift, on_delete=models.CASCADE, related_name="+", db_index=False)
    recorded_at = models.DateTimeField(_("heure du point"))

    class Meta:
        verbose_name = _("point en attente de couverture")
        verbose_name_plural = _("points en attente de couverture")
        constraints = [
            models.UniqueConstraint(fields=["shift", "recorded_at"], name="backlog_unique_fix"),
        ]

    def __str__(self) -> str:
        return f"{self.shift_id} @ {self.recorded_at:%Y-%m-%d %H:%M:%S}"
