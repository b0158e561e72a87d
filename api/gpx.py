"""`POST /api/v1/shifts/{id}/gpx/`: a GPX track recorded by any GPS app, after the fact.

The file comes as a multipart upload (any field name; `file` in the docs) or as the raw body
(`Content-Type: application/gpx+xml`, `application/xml`, `text/xml` or
`application/octet-stream`). A file that cannot be read at all (malformed XML, a DTD or
entities, no track) is a 400 and nothing is stored; otherwise every point goes through the
same rules and the same coverage update as the other doors (zones.services.track_ingest),
and the answer is the positions API's: `accepted`, `duplicates`, `rejected` with each
point's reason. A file none of whose points could be stored is a 400 too.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.parsers import PayloadTooLarge, too_large
from api.serializers import ErrorSerializer
from maraudes.gpx import GpxError, parse_gpx
from maraudes.models import PositionSource, Role, Shift
from maraudes.roles import COORDINATION, user_has_role, user_roles, user_team_ids
from zones.services import track_ingest

# The answer lists this many refused points at most (a whole day's file outside the shift
# would list thousands); `rejected_count` says how many there were.
MAX_REASONS = 200


class RawGpxParser(BaseParser):
    """A GPX file sent as the body itself."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        if stream is None:
            return b""
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large(len(raw))
        return raw


def _shift_for_upload(request: Request, shift_id: int) -> Shift:
    user = request.user
    if Role.PLANNER in user_roles(user) and not user_has_role(user, COORDINATION | {Role.FIELD}):
        raise PermissionDenied("Les planificateurs ne saisissent pas de points.")
    shift = get_object_or_404(Shift.objects.select_related("team"), pk=shift_id)
    if not (user_has_role(user, COORDINATION) or shift.team_id in user_team_ids(user)):
        raise PermissionDenied("Cette maraude n'est pas celle de votre équipe.")
    return shift


def _file_bytes(request: Request) -> bytes:
    data = request.data
    if isinstance(data, bytes):
        return data
    files = list(request.FILES.values())
    if not files:
        raise ValidationError({"file": ["Fichier GPX manquant ou vide."]})
    if len(files) > 1:
        raise ValidationError({"file": [f"Un seul fichier GPX à la fois ({len(files)} reçus)."]})
    upload = files[0]
    if upload.size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:  # pragma: no cover - middleware
        raise PayloadTooLarge(f"Fichier trop gros ({upload.size} octets).")
    return upload.read()


class ShiftGpxApi(APIView):
    parser_classes = [MultiPartParser, RawGpxParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "GpxUpload", {"file": serializers.FileField(help_text="fichier .gpx")}
            ),
            "application/gpx+xml": OpenApiTypes.BINARY,
        },
        responses={
            200: inline_serializer(
                "GpxResult",
                {
                    "accepted": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                    "rejected": inline_serializer(
                        "GpxRejectedPoint",
                        {"index": serializers.IntegerField(), "reason": serializers.CharField()},
                        many=True,
                    ),
                    "rejected_count": serializers.IntegerField(),
                    "points": serializers.IntegerField(),
                    "tracks": serializers.IntegerField(),
                    "segments": serializers.IntegerField(),
                    "waypoints_ignored": serializers.IntegerField(),
                },
            ),
            400: OpenApiResponse(
                ErrorSerializer,
                description="Fichier illisible (XML mal formé, DTD ou entités, pas de trace) "
                "ou aucun point retenu : rien n'est enregistré.",
            ),
            403: OpenApiResponse(ErrorSerializer, description="Pas votre équipe."),
            413: OpenApiResponse(ErrorSerializer, description="Fichier trop gros."),
        },
        description="Importe une trace GPX dans la maraude : chaque point de trace (trkpt) "
        "passe les mêmes règles que les autres points ; points d'intérêt et itinéraires sont "
        "ignorés. Réponse : comme POST /positions/, plus le décompte du fichier.",
    )
    def post(self, request: Request, shift_id: int) -> Response:
        shift = _shift_for_upload(request, shift_id)
        data = _file_bytes(request)
        try:
            parsed = parse_gpx(data)
        except GpxError as exc:
            raise ParseError(str(exc)) from None
        recorded = track_ingest(shift=shift, fixes=parsed.fixes, source=PositionSource.GPX)
        rejected = sorted([*parsed.rejected, *recorded.rejected], key=lambda r: r.index)
        body = {
            "accepted": len(recorded.accepted),
            "duplicates": recorded.duplicates,
            "rejected": [r.as_dict() for r in rejected[:MAX_REASONS]],
            "rejected_count": len(rejected),
            "points": parsed.points,
            "tracks": parsed.tracks,
            "segments": parsed.segments,
            "waypoints_ignored": parsed.waypoints,
        }
        if not recorded.accepted and not recorded.duplicates:
            first = rejected[0].reason if rejected else "aucun point."
            body["detail"] = f"Aucun point de ce fichier n'a été retenu ; par exemple, {first}"
            return Response(body, status=400)
        return Response(body)
