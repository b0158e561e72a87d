"""ASGI entry point: HTTP through Django (tracker points by api.trackers.TrackerFastPath),
websockets through Channels.

Websockets: the Origin must be one of ALLOWED_HOSTS (a page of another site cannot ride on a
coordinator's session cookie); then a phone's API token or the browser's session says who
is connecting (api.ws_auth).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maraudes.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from api.routing import websocket_urlpatterns  # noqa: E402
from api.trackers import TrackerFastPath  # noqa: E402
from api.ws_auth import TokenAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Tracker points (one a request, hundreds a second for a city) are answered before
        # Django's handler and its middleware; every other request goes through Django.
        "http": TrackerFastPath(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
