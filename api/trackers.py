"""`/api/v1/track/`: background trackers (Traccar Client, OsmAnd) send their points here.

The tracker token issued at check-in is the only credential these apps send: no session, no
CSRF, no API token. Status codes, as the apps read them (any 2xx is success to them; they
keep a point and retry it on anything else):

- 200: stored, or already stored (a resend after a lost answer is a success). The request
  only stores the point and queues it: coverage follows within seconds, batched across
  shifts (zones.catchup), so a tracker's request costs a few milliseconds;
- 400: the request or the point is wrong, with the reason in `detail`. A point that can never
  succeed (swapped coordinates, no accuracy, a time in the future, after the end of the shift)
  still gets a 400, not a silent 200: the reason shows in the tracker's log and the server's,
  nothing is dropped without a word, and the apps' own queues give up on old points (Traccar
  Client 9 keeps them a day). Valid points sent in the same request are stored first;
  resending them is harmless (dedupe on shift and time);
- 404: unknown token (a typo in the device identifier);
- 410: the token's shift ended more than TRACKER_GRACE ago: stop the tracker;
- 413: body too large (a point is a few hundred bytes).

Served twice with the same `tracker_answers`: by TrackerFastPath, an ASGI middleware ahead of
Django's handler that answers the requests arriving together in one round (the hot path: a
Django request under ASGI costs several times the point), and by TrackerApi through Django
(OpenAPI schema, tests, a server without the middleware), one request at a time.

`POST /api/v1/track/setup/` gives the team app what its Traccar Client setup card shows,
QR code included, from the token it received at check-in (sent in the body: a token never
appears in a URL the app requests).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import segno
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone, translation
from django.utils.translation.trans_real import parse_accept_lang_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import BoundedLenientJSONParser, PayloadTooLarge
from api.serializers import ErrorSerializer, StrictSerializer
from maraudes import services
from maraudes.models import Role, Shift, TeamMode
from maraudes.roles import COORDINATION, user_has_role, user_roles, user_team_ids
from maraudes.services import PositionsRecorded, TrackerTokenExpired, TrackerTokenUnknown
from maraudes.trackers import TrackerError, TrackerPoints, is_json, parse_query, parse_traccar_json
from zones.catchup import track_store_many

# One Traccar point is about 500 bytes; a batch of MAX_LOCATIONS fits well within this.
MAX_TRACKER_BODY = 512 * 1024

log = logging.getLogger(__name__)


class RawBodyParser(BaseParser):
    """The body as bytes, whatever its type: the tracker formats are read by
    maraudes.trackers, which needs the bytes (JSON or form) and the query string."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        if stream is None:
            return b""
        raw = stream.read(MAX_TRACKER_BODY + 1)
        if len(raw) > MAX_TRACKER_BODY:
            raise PayloadTooLarge(f"Corps trop gros : {MAX_TRACKER_BODY} octets au plus.")
        return raw


_TRACCAR_EXAMPLE = {
    "location": {
        "timestamp": "2026-11-20T20:31:05.123Z",
        "coords": {
            "latitude": 48.853,
            "longitude": 2.3499,
            "accuracy": 8.5,
            "speed": 1.2,
            "heading": 84.0,
            "altitude": 35.0,
        },
        "is_moving": True,
        "odometer": 1520.4,
        "event": "motionchange",
        "battery": {"level": 0.62, "is_charging": False},
        "activity": {"type": "walking"},
        "extras": {},
    },
    "device_id": "jeton-de-suivi-donne-au-debut-de-la-maraude",
}

_QUERY_PARAMETERS = [
    OpenApiParameter("id", OpenApiTypes.STR, description="jeton de suivi (ou `deviceid`)"),
    OpenApiParameter(
        "timestamp",
        OpenApiTypes.STR,
        description="secondes ou millisecondes unix, ou ISO-8601 avec fuseau",
    ),
    OpenApiParameter("lat", OpenApiTypes.NUMBER, description="latitude WGS84"),
    OpenApiParameter("lon", OpenApiTypes.NUMBER, description="longitude WGS84"),
    OpenApiParameter("accuracy", OpenApiTypes.NUMBER, description="mètres (OsmAnd : `hdop`)"),
    OpenApiParameter("hdop", OpenApiTypes.NUMBER, description="précision en mètres (OsmAnd)"),
    OpenApiParameter("speed", OpenApiTypes.NUMBER, description="nœuds"),
    OpenApiParameter("bearing", OpenApiTypes.NUMBER, description="cap en degrés"),
    OpenApiParameter("altitude", OpenApiTypes.NUMBER, description="mètres (ignorée)"),
    OpenApiParameter("batt", OpenApiTypes.NUMBER, description="batterie en % (ignorée)"),
]

_TRACK_RESULT = inline_serializer(
    "TrackerResult",
    {"accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField()},
)
_TRACK_REFUSED = inline_serializer(
    "TrackerRefused",
    {
        "detail": serializers.CharField(),
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": inline_serializer(
            "TrackerRejectedPoint",
            {"index": serializers.IntegerField(), "reason": serializers.CharField()},
            many=True,
        ),
    },
)
_TRACK_RESPONSES = {
    200: _TRACK_RESULT,
    400: OpenApiResponse(_TRACK_REFUSED, description="Requête ou point refusé : la raison."),
    404: OpenApiResponse(ErrorSerializer, description="Jeton de suivi inconnu."),
    410: OpenApiResponse(ErrorSerializer, description="Maraude terminée : arrêtez le suivi."),
    413: OpenApiResponse(ErrorSerializer, description="Corps trop gros."),
}


class TrackerApi(APIView):
    """Points from Traccar Client 9.x (JSON) and from the legacy Traccar Client and OsmAnd
    (query parameters, GET or POST, or a form body)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [RawBodyParser]
    throttle_classes: list = []

    @extend_schema(
        operation_id="track_query",
        parameters=_QUERY_PARAMETERS,
        responses=_TRACK_RESPONSES,
        description="Format historique de Traccar Client et d'OsmAnd : un point en "
        "paramètres d'URL. Vitesse en nœuds.",
        auth=[],
    )
    def get(self, request: Request) -> Response:
        return self._track(request)

    @extend_schema(
        operation_id="track_point",
        parameters=_QUERY_PARAMETERS,
        request={
            "application/json": OpenApiTypes.OBJECT,
            "application/x-www-form-urlencoded": OpenApiTypes.OBJECT,
        },
        examples=[OpenApiExample("Traccar Client 9", value=_TRACCAR_EXAMPLE, request_only=True)],
        responses=_TRACK_RESPONSES,
        description="Traccar Client 9.x : corps JSON `{location: {timestamp, coords: "
        "{latitude, longitude, accuracy, speed (m/s), heading}}, device_id}`. Le format "
        "historique (paramètres d'URL ou corps de formulaire, vitesse en nœuds) est aussi "
        "accepté en POST.",
        auth=[],
    )
    def post(self, request: Request) -> Response:
        return self._track(request)

    def _track(self, request: Request) -> Response:
        # An empty body parses to {} (DRF's "no content"): only bytes are a body.
        body = request.data if request.method == "POST" else b""
        answer = tracker_answer(
            content_type=request.content_type,
            query=request.META.get("QUERY_STRING", ""),
            body=body if isinstance(body, bytes) else b"",
        )
        return Response(answer.data, status=answer.status)


@dataclass
class TrackerAnswer:
    status: int
    data: dict


@dataclass(frozen=True)
class TrackerRequest:
    """What `tracker_answers` reads of a tracker request."""

    content_type: str | None
    query: str
    body: bytes


def tracker_answer(*, content_type: str | None, query: str, body: bytes) -> TrackerAnswer:
    """The answer to one tracker request (see tracker_answers)."""
    return tracker_answers([TrackerRequest(content_type, query, body)])[0]


def tracker_answers(requests: Sequence[TrackerRequest]) -> list[TrackerAnswer]:
    """The answers to tracker requests, whoever serves them (TrackerApi one at a time,
    TrackerFastPath those that arrived together), in the active language: read each one's
    points, find the shifts by their tokens (one query), store and queue the valid points of
    all of them (one transaction, zones.catchup.track_store_many; coverage follows within
    seconds)."""
    answers: list[TrackerAnswer | None] = [None] * len(requests)
    read: list[tuple[int, TrackerPoints]] = []
    for index, request in enumerate(requests):
        try:
            read.append((index, _points(request.content_type, request.query, request.body)))
        except TrackerError as exc:
            answers[index] = TrackerAnswer(status.HTTP_400_BAD_REQUEST, {"detail": str(exc)})
    shifts = services.shifts_for_tracker_tokens({points.token for _index, points in read})
    now = timezone.now()
    storing: list[tuple[int, TrackerPoints, Shift]] = []
    for index, points in read:
        try:
            shift = services.tracker_token_check(shifts.get(points.token), now=now)
        except TrackerTokenUnknown as exc:
            answers[index] = TrackerAnswer(status.HTTP_404_NOT_FOUND, {"detail": str(exc)})
        except TrackerTokenExpired as exc:
            answers[index] = TrackerAnswer(status.HTTP_410_GONE, {"detail": str(exc)})
        else:
            storing.append((index, points, shift))
    stored = (
        track_store_many([(shift, points.fixes, points.source) for _i, points, shift in storing])
        if storing
        else []
    )
    for (index, points, _shift), recorded in zip(storing, stored, strict=True):
        answers[index] = _answer(points, recorded)
    return answers  # type: ignore[return-value]  # every request has its answer


def _answer(points: TrackerPoints, recorded: PositionsRecorded) -> TrackerAnswer:
    counts = {"accepted": len(recorded.accepted), "duplicates": recorded.duplicates}
    rejected = sorted([*points.rejected, *recorded.rejected], key=lambda r: r.index)
    if rejected:
        detail = (
            rejected[0].reason
            if len(rejected) == 1
            else f"{len(rejected)} points refusés ; le premier : {rejected[0].reason}"
        )
        return TrackerAnswer(
            status.HTTP_400_BAD_REQUEST,
            {"detail": detail, **counts, "rejected": [r.as_dict() for r in rejected]},
        )
    return TrackerAnswer(status.HTTP_200_OK, counts)


def _points(content_type: str | None, query: str, body: bytes) -> TrackerPoints:
    if body and is_json(content_type, body):
        return parse_traccar_json(body)
    # When a name comes twice, the last value wins (as Django's QueryDict.items()).
    params = parse_qsl(query, keep_blank_values=True)
    if body:
        # Legacy clients put everything in the URL; a form body (or a body that is the
        # same query string) is read too, its values winning.
        params += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return parse_query(params)


# --- The fast path ---------------------------------------------------------------------------

TRACKER_PATHS = frozenset({"/api/v1/track/", "/api/v1/track"})
# What Django's SecurityMiddleware and XFrameOptionsMiddleware add to every answer.
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class TrackerFastPath:
    """ASGI middleware that answers `GET|POST /api/v1/track/` itself, ahead of Django's
    handler; every other request goes on to `app`.

    Trackers send one point per request, hundreds a second for a city, and a Django request
    under ASGI costs far more than the point (measured on this project's 2-core machine:
    ~9 ms of Python a request through the handler and its ten middlewares, each hopping
    between the event loop and a thread created for the request). This path reads the body
    (at most MAX_TRACKER_BODY) and hands the request to the process's `_GroupCommit`, which
    answers the requests that arrived together with one `tracker_answers` call on a pooled
    thread (one token query, one transaction), with Django's per-request database hygiene
    (close_old_connections before and after) and the language of Accept-Language, as
    LocaleMiddleware would. What the middlewares would add is irrelevant to a tracker (no
    session, cookie, CSRF or redirect; Host is not used), except the security headers, added
    here. TrackerApi serves the same operation through Django (the OpenAPI schema, tests, a
    server without this middleware) with the same `tracker_answers`.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] not in TRACKER_PATHS
            or scope["method"] not in ("GET", "POST")
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            body = await _read_body(receive, headers) if scope["method"] == "POST" else b""
        except _Disconnected:
            return  # the tracker gave up: it will send the point again
        if body is None:
            answer = TrackerAnswer(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                {"detail": f"Corps trop gros : {MAX_TRACKER_BODY} octets au plus."},
            )
            language = settings.LANGUAGE_CODE
        else:
            request = TrackerRequest(
                content_type=headers.get(b"content-type", b"").decode("latin-1") or None,
                query=scope.get("query_string", b"").decode("latin-1"),
                body=body,
            )
            language = _language(headers.get(b"accept-language", b"").decode("latin-1"))
            answer = await _group_commit().answer(request, language)
        payload = json.dumps(answer.data, ensure_ascii=False, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-language", language.encode()),
                    (b"vary", b"Accept-Language"),
                    *_SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class _Disconnected(Exception):
    pass


async def _read_body(receive, headers: dict[bytes, bytes]) -> bytes | None:
    """The request body, or None when it is larger than MAX_TRACKER_BODY; _Disconnected when
    the client left before sending it whole."""
    try:
        if int(headers.get(b"content-length", b"0")) > MAX_TRACKER_BODY:
            return None
    except ValueError:
        pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_TRACKER_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class _GroupCommit:
    """Tracker requests of one event loop (one worker process), answered together.

    A request that arrives while answers are being computed waits for the next round, which
    takes everything that arrived in the meantime (at most ROUND_REQUESTS requests or
    ROUND_BYTES of bodies; the rest waits for the round after): one thread hop, one token
    query, one transaction for all of them instead of each. A lone request goes at once;
    under load, rounds grow by themselves, as a database's group commit. Each language's
    requests are answered in that language; if a round fails as a whole (a database error),
    its requests are answered one by one, so one request cannot fail the others.
    """

    ROUND_REQUESTS = 256
    ROUND_BYTES = 1024 * 1024

    def __init__(self) -> None:
        self._waiting: list[tuple[TrackerRequest, str, asyncio.Future]] = []
        self._rounds: asyncio.Task | None = None

    async def answer(self, request: TrackerRequest, language: str) -> TrackerAnswer:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((request, language, future))
        if self._rounds is None:
            self._rounds = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                round_ = self._take()
                try:
                    answers = await sync_to_async(_answers_in_thread, thread_sensitive=False)(
                        [(request, language) for request, language, _future in round_]
                    )
                except Exception as exc:  # _answers_in_thread answers errors itself
                    for _request, _language, future in round_:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_request, _language, future), answer in zip(round_, answers, strict=True):
                    if not future.done():  # the tracker may have left
                        future.set_result(answer)
        finally:
            self._rounds = None

    def _take(self) -> list[tuple[TrackerRequest, str, asyncio.Future]]:
        size = 0
        for count, (request, _language, _future) in enumerate(self._waiting):
            size += len(request.body) + len(request.query)
            if count and (count == self.ROUND_REQUESTS or size > self.ROUND_BYTES):
                break
        else:
            count = len(self._waiting)
        round_, self._waiting = self._waiting[:count], self._waiting[count:]
        return round_


_group_commits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = (
    weakref.WeakKeyDictionary()
)


def _group_commit() -> _GroupCommit:
    loop = asyncio.get_running_loop()
    group = _group_commits.get(loop)
    if group is None:
        group = _group_commits[loop] = _GroupCommit()
    return group


def _answers_in_thread(requests: Sequence[tuple[TrackerRequest, str]]) -> list[TrackerAnswer]:
    """tracker_answers for a round of the fast path, language by language (one, usually)."""
    answers: list[TrackerAnswer | None] = [None] * len(requests)
    by_language: dict[str, list[int]] = {}
    for index, (_request, language) in enumerate(requests):
        by_language.setdefault(language, []).append(index)
    close_old_connections()
    try:
        for language, indexes in by_language.items():
            with translation.override(language):
                group = [requests[index][0] for index in indexes]
                try:
                    found = tracker_answers(group)
                except Exception:
                    if len(group) == 1:
                        log.exception("Internal Server Error: /api/v1/track/")
                        found = [_SERVER_ERROR]
                    else:  # one by one: a request cannot fail the others
                        found = [_answer_alone(request) for request in group]
                for index, answer in zip(indexes, found, strict=True):
                    answers[index] = answer
    finally:
        close_old_connections()
    return answers  # type: ignore[return-value]  # every request has its answer


_SERVER_ERROR = TrackerAnswer(
    status.HTTP_500_INTERNAL_SERVER_ERROR, {"detail": "Erreur du serveur."}
)


def _answer_alone(request: TrackerRequest) -> TrackerAnswer:
    try:
        return tracker_answers([request])[0]
    except Exception:
        log.exception("Internal Server Error: /api/v1/track/")
        return _SERVER_ERROR


def _language(accept_language: str) -> str:
    """Accept-Language's best supported language, else LANGUAGE_CODE (LocaleMiddleware's
    choice for a request with no language cookie)."""
    for code, _quality in parse_accept_lang_header(accept_language):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


# --- The setup card -------------------------------------------------------------------------


class TrackerSetupIn(StrictSerializer):
    shift = serializers.IntegerField(help_text="id de la maraude")
    tracker_token = serializers.CharField(
        max_length=200, help_text="le jeton rendu par POST /api/v1/shifts/"
    )


class TrackerSetupOut(serializers.Serializer):
    server_url = serializers.URLField(help_text="adresse du serveur à saisir dans le traceur")
    device_id = serializers.CharField(help_text="identifiant de l'appareil : le jeton")
    config_url = serializers.CharField(
        help_text="lien de configuration de Traccar Client 9 (contenu du QR code)"
    )
    qr_svg = serializers.CharField(help_text="QR code du lien de configuration, en SVG")
    settings = serializers.DictField(help_text="réglages recommandés, inclus dans le lien")


def traccar_settings(shift: Shift) -> dict[str, str]:
    """Traccar Client 9 settings for coverage: a point at least every 30 s (MAX_GAP_S is 120 s,
    so a missed point or two still draws the line), or every 25 m on foot (100 m by vehicle);
    a heartbeat when standing still; points buffered while offline."""
    vehicle = shift.team.mode == TeamMode.VEHICLE
    return {
        "accuracy": "highest",
        "interval": "30",
        "distance": "100" if vehicle else "25",
        "heartbeat": "60",
        "buffer": "true",
    }


class TrackerSetupApi(APIView):
    parser_classes = [BoundedLenientJSONParser]

    @extend_schema(
        request=TrackerSetupIn,
        responses={
            200: TrackerSetupOut,
            400: OpenApiResponse(ErrorSerializer, description="Jeton ne correspondant pas."),
            403: OpenApiResponse(ErrorSerializer, description="Pas votre équipe."),
            404: OpenApiResponse(ErrorSerializer, description="Maraude inconnue."),
        },
        description="Ce qu'affiche la carte « Traccar Client » de l'application d'équipe : "
        "adresse du serveur, identifiant de l'appareil, lien de configuration et son QR code "
        "(SVG). Le jeton voyage dans le corps de la requête, jamais dans une URL.",
    )
    def post(self, request: Request) -> Response:
        data = TrackerSetupIn(data=request.data)
        data.is_valid(raise_exception=True)
        shift = Shift.objects.select_related("team").filter(pk=data.validated_data["shift"]).first()
        if shift is None:
            return Response({"detail": "Maraude inconnue."}, status=status.HTTP_404_NOT_FOUND)
        user = request.user
        if Role.PLANNER in user_roles(user) and not user_has_role(
            user, COORDINATION | {Role.FIELD}
        ):
            raise PermissionDenied("Les planificateurs ne configurent pas de traceur.")
        if not (user_has_role(user, COORDINATION) or shift.team_id in user_team_ids(user)):
            raise PermissionDenied("Cette maraude n'est pas celle de votre équipe.")
        token = data.validated_data["tracker_token"].strip()
        if services.tracker_token_hash(token) != shift.tracker_token_hash:
            return Response(
                {"tracker_token": ["Ce jeton n'est pas celui de cette maraude."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        server_url = request.build_absolute_uri("/api/v1/track/")
        preferences = traccar_settings(shift)
        config_url = f"{server_url}?{urlencode({'id': token, **preferences})}"
        qr = segno.make(config_url, error="m")
        svg = qr.svg_inline(scale=4, border=2, dark="#000", light="#fff", omitsize=True)
        return Response(
            {
                "server_url": server_url,
                "device_id": token,
                "config_url": config_url,
                "qr_svg": svg,
                "settings": preferences,
            }
        )


# --- Keeping tokens out of access logs ------------------------------------------------------

_TOKEN_IN_QUERY = re.compile(r"(?<=[?&])(id|deviceid)=[^&\s\"]*", re.IGNORECASE)


class RedactTrackerTokens(logging.Filter):
    """The legacy formats put the token in the URL, which access logs write down (uvicorn's
    `uvicorn.access`, runserver's `django.server`): blank it in any logged string that
    mentions the tracker endpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "/track/" in a for a in args):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1=…", a) if isinstance(a, str) else a for a in args
            )
        return True


_REDACT = RedactTrackerTokens()
for _name in ("uvicorn.access", "django.server"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, RedactTrackerTokens) for f in _logger.filters):
        _logger.addFilter(_REDACT)


class TrackerNoSlashApi(TrackerApi):
    """`/api/v1/track` without the final slash: the same operation, documented once."""

    schema = None
