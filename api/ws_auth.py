"""Who is on the other end of a websocket: a browser session, or a phone's API token.

Browsers cannot set headers on a websocket, so they come with their session cookie
(Channels' AuthMiddlewareStack). Phones use the same token as the REST API
(`POST /api/v1/auth/token/`), as `Authorization: Token <key>` in the handshake or as
`?token=<key>` when their websocket library cannot set headers. A token, when given, decides
alone: a wrong one leaves the connection anonymous (the consumer closes it with 4401) rather
than falling back to a session the caller did not mean to use.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser


def token_from_scope(scope: dict) -> str | None:
    """The token of the handshake: the Authorization header first, then `?token=`."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    keys = query.get("token")
    return keys[0] if keys and keys[0] else None


@database_sync_to_async
def user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] from a token when the handshake carries one; else leaves the
    session's user (resolved by AuthMiddleware, outside this one) in place."""

    async def __call__(self, scope, receive, send):
        key = token_from_scope(scope)
        if key is not None:
            scope = dict(scope, user=await user_for_token(key))
        return await super().__call__(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # named like Channels' AuthMiddlewareStack
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
