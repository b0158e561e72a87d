"""One shape for every error: DRF's {"field": ["message"]} or {"detail": "..."}.

Django ValidationErrors raised by services become 400s naming the field, instead of 500s.
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        # Errors tied to no field go under the key DRF uses for a serializer's validate().
        if hasattr(exc, "error_dict"):
            errors = exc.message_dict
            if NON_FIELD_ERRORS in errors:
                errors[api_settings.NON_FIELD_ERRORS_KEY] = errors.pop(NON_FIELD_ERRORS)
        else:
            errors = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        exc = exceptions.ValidationError(errors)
    return drf_exception_handler(exc, context)
