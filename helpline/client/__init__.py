"""A Python client for Helpline: REST calls and the event stream, blocking or async.

    from helpline.client import Client

    with Client("https://chat.example.com") as client:
        client.start_customer_session("demo", display_name="Ada")
        conversation = client.create_conversation()
        client.send_message(conversation["id"], "Hello!")
        for event in client.events():          # reconnects, resumes and de-duplicates by itself
            if event.type == "stream.reset":   # history was lost: re-fetch what you display
                ...
            print(event.type, event.data)

`AsyncClient` has the same methods, awaited; its `events()` is an async generator, best iterated
inside `contextlib.aclosing(...)` so that leaving the loop closes the connection at once.

`events()` speaks docs/protocol.md's "Events" section: it resumes with `Last-Event-ID` after every drop,
never yields an id twice, treats a stream that goes silent for two heartbeats as dead, and falls back
to long-polling (`client.transport == "poll"`) when an intermediary seems to buffer the stream, trying
SSE again later. It yields `stream.reset` (re-fetch your state) and consumes the stream's own control
events (`stream.open`, `stream.heartbeat`, `stream.reconnect`).

Errors form one tree, so callers catch what they mean and nothing from httpx leaks through:

    HelplineError
    ├── HTTPStatusError   the server answered 4xx/5xx: .status, .code, .detail, .retry_after
    ├── TransportError    the server could not be reached, or the connection broke
    └── ProtocolError     the server answered something the protocol does not allow
"""

from helpline.client._async import AsyncClient
from helpline.client._errors import (
    HelplineError,
    HTTPStatusError,
    ProtocolError,
    TransportError,
)
from helpline.client._events import Event
from helpline.client._sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "Event",
    "HTTPStatusError",
    "HelplineError",
    "ProtocolError",
    "TransportError",
]
