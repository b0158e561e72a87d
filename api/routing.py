"""Websocket routes: the coordination's live feed and a team's feed (api.consumers)."""

from django.urls import path, re_path

from api import consumers

websocket_urlpatterns = [
    path("ws/live/", consumers.LiveFeedConsumer.as_asgi()),
    path("ws/team/", consumers.TeamFeedConsumer.as_asgi()),
    re_path(r"", consumers.NoSuchFeedConsumer.as_asgi()),
]
