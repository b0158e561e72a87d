"""Websocket routes. The live feeds come with the live-map work (issue 4)."""

websocket_urlpatterns: list = []
