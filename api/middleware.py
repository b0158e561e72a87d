"""Refuse oversized requests up front with a JSON 413 naming the limit, before any parsing."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestSizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        if size > limit:
            return JsonResponse(
                {
                    "detail": f"Corps de requête trop gros ({size} octets) : {limit} octets "
                    "au plus ; envoyez des lots plus petits."
                },
                status=413,
            )
        return self.get_response(request)
