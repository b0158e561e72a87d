"""JSON for phones: bounded in size, and lenient about NaN so one bad fix spoils nothing.

Python's json module writes NaN and Infinity as bare literals; strict parsing would reject
the whole batch. Read leniently, each non-finite number is then refused fix by fix, with its
index, and the valid fixes of the batch are stored.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def too_large(size: int) -> PayloadTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return PayloadTooLarge(
        f"Corps de requête trop gros ({size} octets) : {limit} octets au plus ; "
        "envoyez des lots plus petits."
    )


class BoundedLenientJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        if declared > limit:
            raise too_large(declared)
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large(len(raw))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"JSON invalide : {exc}") from None
