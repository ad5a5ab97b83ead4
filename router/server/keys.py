"""The ASGI extensions this listener offers its app: one scope key and two message keys.

The server owns them (it sets or reads them); the proxy imports them from here,
a module that pulls in nothing else, so the request path never depends on the
listener's uvicorn internals.
"""

from __future__ import annotations

__all__ = ["BODY_FOLLOWS", "DISCONNECT_KEY", "WHOLE_BODY"]

# Set in the scope of a request cancelled because its client went away: True, or the deadline
# that cut it off ("body_timeout", "send_timeout"). The cancellation that follows is then the
# client's doing, not a shutdown.
DISCONNECT_KEY = "router.client_disconnected"

# A key an app may set on ``http.response.start`` to say its first body message is sent
# before it next awaits: the head is then held for it without scheduling a flush.
BODY_FOLLOWS = "router.body_follows"

# A key an app may set on ``http.response.start`` to give the whole body with the head (bytes,
# possibly empty): the response is then complete, and no ``http.response.body`` may follow.
WHOLE_BODY = "router.whole_body"
