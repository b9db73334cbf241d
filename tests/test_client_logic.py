"""The client's decisions without a server: backoff, de-duplication, the watchdog, the fallback to
long-polling, error translation; then the event loops of both clients driven by `httpx.MockTransport`.

Every streaming test has a bound: stalls use timeouts of a few tens of milliseconds, and blocked mock
streams are released at teardown (STYLE.md: tests that cannot hang).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from itertools import islice
from typing import Any

import anyio
import httpx
import pytest

import helpline.client
from helpline.client import AsyncClient, Client, Event, HelplineError, HTTPStatusError, TransportError
from helpline.client._errors import ProtocolError, error_from_response, parse_retry_after
from helpline.client._events import event_from_json, event_from_sse
from helpline.client._retry import Backoff, retry_delay
from helpline.client._stream import StreamState, Watchdog
from helpline.sse import ServerSentEvent, encode_comment, encode_event, encode_preamble


class FixedRandom(random.Random):
    """`uniform(a, b)` returns the upper bound (or the lower one), so schedules are exact."""

    def __init__(self, upper: bool = True) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


def ev(id: int | None, type: str = "conversation.message", **data: Any) -> Event:
    return Event(id, type, {"type": type, **({"id": id} if id is not None else {}), **data})


def frame(id: int | None, type: str = "conversation.message", **data: Any) -> bytes:
    body = {"type": type, **({"id": id} if id is not None else {}), **data}
    return encode_event(json.dumps(body), event=type, id=id)


PREAMBLE = encode_preamble(padding=64, retry_ms=0)  # retry 0: reconnections in tests do not wait


def test_public_api() -> None:
    expected = {
        "AsyncClient",
        "Client",
        "Event",
        "HTTPStatusError",
        "HelplineError",
        "ProtocolError",
        "TransportError",
    }
    assert set(helpline.client.__all__) == expected
    assert all(hasattr(helpline.client, name) for name in expected)
    for name in ("HTTPStatusError", "ProtocolError", "TransportError"):
        assert issubclass(getattr(helpline.client, name), HelplineError)


# -- backoff


def test_backoff_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, rng=FixedRandom())
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_jitter_is_between_half_and_full_delay() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, rng=FixedRandom(upper=False))
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 5.0]
    real = Backoff(initial=2.0, maximum=10.0)
    delays = [real.next_delay() for _ in range(50)]
    assert 1.0 <= delays[0] <= 2.0
    assert all(0 <= d <= 10.0 for d in delays)


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(initial=1.0, rng=FixedRandom())
    backoff.next_delay(), backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_never_overflows() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, rng=FixedRandom())
    backoff.attempt = 10_000
    assert backoff.next_delay() == 30.0


def test_server_retry_above_the_maximum_wins() -> None:
    backoff = Backoff(initial=60.0, maximum=30.0, rng=FixedRandom())
    assert backoff.next_delay() == 60.0


def test_planned_delay_is_within_one_retry_interval() -> None:
    assert Backoff(initial=3.0, rng=FixedRandom()).planned_delay() == 3.0
    assert Backoff(initial=3.0, rng=FixedRandom(upper=False)).planned_delay() == 0.0


def test_stream_retry_field_sets_the_backoff() -> None:
    state = StreamState(backoff=Backoff(rng=FixedRandom()))
    state.opened(0.0)
    state.received(encode_preamble(padding=10, retry_ms=1500), 0.0)
    assert state.backoff.initial == 1.5
    assert state.ended(1.0) == 1.5


# -- de-duplication and the resume point


def test_dedup_drops_ids_at_or_below_the_last_one() -> None:
    state = StreamState(last_event_id=5)
    assert [state.accept(ev(i)) for i in (4, 5, 6, 6, 8, 7, 9)] == [False, False, True, False, True, False, True]
    assert state.last_event_id == 9


def test_ephemeral_events_always_pass() -> None:
    state = StreamState(last_event_id=5)
    assert state.accept(ev(None, "conversation.typing_started"))
    assert state.accept(ev(None, "conversation.typing_started"))
    assert state.last_event_id == 5


def test_without_a_resume_point_everything_passes_once() -> None:
    state = StreamState()
    assert [state.accept(ev(i)) for i in (1, 1, 2)] == [True, False, True]


def test_stream_reset_is_passed_on_and_starts_a_new_sequence() -> None:
    state = StreamState(last_event_id=500)
    assert state.accept(ev(3, "stream.reset"))
    assert state.last_event_id == 3
    assert state.accept(ev(4))  # below the old 500: the server's history restarted


def test_stream_reset_without_id_uses_its_last_event_id_field() -> None:
    state = StreamState(last_event_id=500)
    assert state.accept(Event(None, "stream.reset", {"type": "stream.reset", "last_event_id": 12}))
    assert state.last_event_id == 12
    assert state.accept(Event(None, "stream.reset", {"type": "stream.reset"}))
    assert state.last_event_id is None


def test_advance_never_moves_back() -> None:
    state = StreamState(last_event_id=10)
    state.advance(7)
    assert state.last_event_id == 10
    state.advance(None)
    assert state.last_event_id == 10
    state.advance(15)
    assert state.last_event_id == 15


def test_sse_headers_carry_last_event_id() -> None:
    assert "Last-Event-ID" not in StreamState().sse_headers()
    assert StreamState(last_event_id=42).sse_headers()["Last-Event-ID"] == "42"


def test_poll_params() -> None:
    assert StreamState(poll_timeout=20).poll_params() == {"timeout": "20"}
    assert StreamState(last_event_id=3, poll_timeout=25).poll_params() == {"timeout": "25", "after": "3"}


# -- the watchdog


def test_watchdog_first_byte_deadline_then_idle_deadline() -> None:
    dog = Watchdog(heartbeat_seconds=15, first_byte_timeout=5)
    dog.start(100.0)
    assert dog.remaining(100.0) == 5.0
    dog.activity(102.0, complete_line=False)  # a partial line is life, but not proof
    assert dog.remaining(103.0) == 2.0
    dog.activity(104.0, complete_line=True)
    assert dog.primed
    assert dog.remaining(104.0) == 30.0
    assert dog.remaining(140.0) == 0.0


def test_watchdog_any_bytes_reset_the_idle_deadline() -> None:
    dog = Watchdog(heartbeat_seconds=15, first_byte_timeout=5)
    dog.start(0.0)
    dog.activity(1.0, complete_line=True)
    dog.activity(25.0, complete_line=False)
    assert dog.remaining(50.0) == 5.0


def test_watchdog_resume_forgives_time_spent_by_the_caller() -> None:
    dog = Watchdog(heartbeat_seconds=1, first_byte_timeout=1)
    dog.start(0.0)
    dog.activity(0.0, complete_line=True)
    dog.resume(10.0)
    assert dog.remaining(10.0) == 2.0


def test_comments_prime_the_watchdog() -> None:
    state = StreamState()
    state.opened(0.0)
    assert state.received(encode_comment("hi"), 1.0) == []
    assert state.watchdog.primed


# -- choosing the transport


def primed(state: StreamState, now: float = 0.0) -> StreamState:
    state.opened(now)
    state.received(PREAMBLE, now)
    return state


def test_stall_before_the_first_line_falls_back_to_polling_at_once() -> None:
    state = StreamState()
    state.opened(0.0)
    assert state.stalled(5.0) == 0.0
    assert state.transport == "poll"


def test_stall_after_some_bytes_but_no_complete_line_falls_back() -> None:
    state = StreamState()
    state.opened(0.0)
    state.received(b": partial padd", 1.0)
    state.stalled(5.0)
    assert state.transport == "poll"


def test_one_stall_reconnects_two_in_a_row_fall_back() -> None:
    state = primed(StreamState(backoff=Backoff(rng=FixedRandom())))
    assert state.stalled(30.0) == 0.0  # retry: 0 from the preamble
    assert state.choose(30.0) == "sse"
    primed(state, 31.0)
    state.stalled(61.0)
    assert state.choose(61.0) == "poll"


def test_a_clean_end_between_stalls_resets_the_count() -> None:
    state = primed(StreamState())
    state.stalled(30.0)
    primed(state, 31.0)
    state.ended(40.0)
    primed(state, 41.0)
    state.stalled(71.0)
    assert state.transport == "sse"


def test_stream_closed_before_any_line_counts_as_buffered() -> None:
    state = StreamState()
    state.opened(0.0)
    state.ended(0.1)
    assert state.transport == "poll"


def test_not_an_event_stream_falls_back() -> None:
    state = StreamState()
    state.not_event_stream(0.0)
    assert state.transport == "poll"


def test_sse_is_retried_after_sse_retry_after() -> None:
    state = StreamState(sse_retry_after=60)
    state.opened(0.0)
    state.stalled(5.0)
    assert state.choose(30.0) == "poll"
    assert state.choose(64.9) == "poll"
    assert state.choose(65.0) == "sse"


def test_stream_reconnect_is_not_passed_on_and_ends_the_connection() -> None:
    state = StreamState(backoff=Backoff(initial=2.0, rng=FixedRandom(upper=False)))
    state.opened(0.0)
    events = state.received(frame(1) + frame(None, "stream.reconnect") + frame(2), 0.0)
    assert [e.id for e in events] == [1]
    assert state.reconnect_requested
    assert state.ended(0.0) == 0.0  # planned: within [0, retry)


def test_stream_open_is_consumed_and_sets_the_heartbeat() -> None:
    state = StreamState(heartbeat_seconds=15)
    state.opened(0.0)
    events = state.received(frame(None, "stream.open", heartbeat_seconds=40) + frame(1), 0.0)
    assert [e.id for e in events] == [1]
    assert state.watchdog.remaining(0.0) == 80.0
    state.received(frame(None, "stream.open", heartbeat_seconds="soon"), 0.0)
    assert state.watchdog.idle_timeout == 80.0


def test_failed_reconnects_on_transport_errors_and_5xx() -> None:
    state = StreamState(backoff=Backoff(initial=1.0, rng=FixedRandom()))
    assert state.failed(TransportError("reset")) == 1.0
    assert state.failed(HTTPStatusError(502)) == 2.0
    assert state.failed(HTTPStatusError(503, "unavailable", retry_after=20.0)) == 20.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_failed_raises_what_reconnecting_cannot_fix(status: int) -> None:
    with pytest.raises(HTTPStatusError):
        StreamState().failed(HTTPStatusError(status))


def test_failed_raises_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        StreamState().failed(ProtocolError("garbage"))


def test_polled_parses_and_filters() -> None:
    state = StreamState()
    body = {
        "events": [{"id": 4, "type": "conversation.message"}, {"type": "stream.reconnect"}],
        "last_event_id": 9,
    }
    events, cursor = state.polled(body, waited=0.1)
    assert events == [Event(4, "conversation.message", {"id": 4, "type": "conversation.message"})]
    assert cursor == 9


def test_empty_poll_answered_early_backs_off() -> None:
    state = StreamState(poll_timeout=20, backoff=Backoff(initial=1.0, rng=FixedRandom()))
    state.polled({"events": [], "last_event_id": None}, waited=0.01)
    assert state.delay == 1.0
    state.polled({"events": [], "last_event_id": None}, waited=0.01)
    assert state.delay == 2.0
    state.polled({"events": [], "last_event_id": None}, waited=20.0)  # the server held it: all is well
    assert state.delay == 0.0


@pytest.mark.parametrize("body", [None, [], {"events": None}, {"events": [1]}])
def test_polled_rejects_malformed_answers(body: Any) -> None:
    with pytest.raises(ProtocolError):
        StreamState().polled(body, waited=1.0)


def test_oversized_stream_line_is_a_protocol_error() -> None:
    state = StreamState()
    state.opened(0.0)
    with pytest.raises(ProtocolError):
        state.received(b"data: " + b"x" * (2 << 20), 0.0)


# -- events and errors


def test_event_from_sse() -> None:
    sse = ServerSentEvent(data='{"type": "offer.created", "id": 7}', event="offer.created", id="7")
    assert event_from_sse(sse) == Event(7, "offer.created", {"type": "offer.created", "id": 7})
    assert event_from_sse(ServerSentEvent(data='{"type": "x"}')).type == "x"
    assert event_from_sse(ServerSentEvent(data="{}", id="")).id is None


@pytest.mark.parametrize(
    "sse",
    [ServerSentEvent(data="nope"), ServerSentEvent(data="[1]"), ServerSentEvent(data="{}", id="abc")],
)
def test_event_from_sse_rejects_garbage(sse: ServerSentEvent) -> None:
    with pytest.raises(ProtocolError):
        event_from_sse(sse)


def test_event_from_json() -> None:
    assert event_from_json({"id": "3", "type": "queue.stats"}).id == 3
    with pytest.raises(ProtocolError):
        event_from_json({"id": True, "type": "x"})


def test_error_from_problem_json() -> None:
    response = httpx.Response(
        403,
        json={
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
            "detail": "needs supervisor",
            "code": "permission_denied",
        },
    )
    error = error_from_response(response)
    assert (error.status, error.code, error.detail, error.title) == (
        403,
        "permission_denied",
        "needs supervisor",
        "Forbidden",
    )
    assert "permission_denied" in str(error)


def test_error_from_non_json_body() -> None:
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>", headers={"Retry-After": "7"}))
    assert (error.status, error.code, error.detail, error.retry_after) == (502, None, None, 7.0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_retry_delay() -> None:
    backoff = Backoff(initial=1.0, rng=FixedRandom())
    assert retry_delay(TransportError("x"), 0, 3, backoff) == 1.0
    assert retry_delay(HTTPStatusError(503, retry_after=2.0), 1, 3, backoff) == 2.0
    assert retry_delay(HTTPStatusError(503, retry_after=3600.0), 1, 3, backoff) is None
    assert retry_delay(HTTPStatusError(500), 0, 3, backoff) is None
    assert retry_delay(HTTPStatusError(409), 0, 3, backoff) is None
    assert retry_delay(TransportError("x"), 3, 3, backoff) is None
    assert retry_delay(ProtocolError("x"), 0, 3, backoff) is None


# -- the clients against httpx.MockTransport

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Scripted answers for `/api/v1/events` and `/api/v1/events/poll`, recording every request."""

    def __init__(self, streams: list[Any], polls: list[Any] | None = None) -> None:
        self.streams = streams
        self.polls = polls or []
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.polls if request.url.path.endswith("/poll") else self.streams
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        response: httpx.Response = answer() if callable(answer) else answer
        return response

    def paths(self) -> list[str]:
        return [r.url.path.rsplit("/", 1)[-1] for r in self.requests]

    def resume_ids(self) -> list[str | None]:
        return [r.headers.get("last-event-id") or r.url.params.get("after") for r in self.requests]


def sse(*chunks: bytes | Any) -> Callable[[], httpx.Response]:
    headers = {"content-type": "text/event-stream; charset=utf-8"}
    return lambda: httpx.Response(200, headers=headers, content=iter(chunks))


def poll(*events: dict[str, Any], last: int | None = None) -> httpx.Response:
    return httpx.Response(200, json={"events": list(events), "last_event_id": last})


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so a mock stream that blocks forever lets its reader thread go."""
    event = threading.Event()
    yield event
    event.set()


def blocking(release: threading.Event, *chunks: bytes) -> Callable[[], httpx.Response]:
    def body() -> Iterator[bytes]:
        yield from chunks
        release.wait(10)

    headers = {"content-type": "text/event-stream"}
    return lambda: httpx.Response(200, headers=headers, content=body())


def client_for(server: Server, **options: Any) -> Client:
    return Client("http://helpline.test", token="t0k", http_transport=httpx.MockTransport(server.handle), **options)


def take(client: Client, count: int, last_event_id: int | None = None) -> list[Event]:
    events = client.events(last_event_id)
    try:
        return list(islice(events, count))
    finally:
        events.close()


def test_reconnects_after_stream_end_with_last_event_id_and_dedups() -> None:
    server = Server(
        [
            sse(PREAMBLE, frame(1), frame(2)),
            sse(PREAMBLE, frame(2), frame(None, "conversation.typing_started"), frame(3)),
        ]
    )
    with client_for(server) as client:
        events = take(client, 4)
    assert [(e.id, e.type) for e in events] == [
        (1, "conversation.message"),
        (2, "conversation.message"),
        (None, "conversation.typing_started"),
        (3, "conversation.message"),
    ]
    assert server.resume_ids()[:2] == [None, "2"]
    assert all(r.headers["authorization"] == "Bearer t0k" for r in server.requests)
    assert client.last_event_id == 3


def test_stream_reconnect_event_is_followed_and_not_yielded() -> None:
    server = Server(
        [
            sse(PREAMBLE, frame(5), frame(None, "stream.reconnect")),
            sse(PREAMBLE, frame(6)),
        ]
    )
    with client_for(server) as client:
        events = take(client, 2, last_event_id=4)
    assert [e.id for e in events] == [5, 6]
    assert server.resume_ids()[:2] == ["4", "5"]


def test_stream_reset_is_yielded() -> None:
    server = Server([sse(PREAMBLE, frame(None, "stream.reset", last_event_id=0), frame(1))])
    with client_for(server) as client:
        events = take(client, 2, last_event_id=99)
    assert [e.type for e in events] == ["stream.reset", "conversation.message"]


def test_wrong_content_type_falls_back_to_polling() -> None:
    server = Server(
        [httpx.Response(200, text="<html>proxy says hi</html>")],
        [poll({"id": 1, "type": "conversation.message"}, {"id": 2, "type": "offer.created"}, last=5)],
    )
    with client_for(server, poll_timeout=25) as client:
        events = take(client, 2)
        assert client.transport == "poll"
    assert [(e.id, e.type) for e in events] == [(1, "conversation.message"), (2, "offer.created")]
    assert server.paths()[:2] == ["events", "poll"]
    assert server.requests[1].url.params["timeout"] == "25"
    assert client.last_event_id == 2  # the poll's cursor is taken only after all of its events


def test_polling_returns_to_sse_after_sse_retry_after() -> None:
    def long_poll() -> httpx.Response:
        time.sleep(0.02)  # a long-poll that found only what we have already seen
        return poll({"id": 2, "type": "offer.created"}, last=2)

    server = Server(
        [httpx.Response(200, text="<html>proxy says hi</html>"), sse(PREAMBLE, frame(3))],
        [poll({"id": 1, "type": "conversation.message"}, {"id": 2, "type": "offer.created"}, last=2), long_poll],
    )
    with client_for(server, sse_retry_after=0.05) as client:
        events = client.events()
        assert [e.id for e in islice(events, 2)] == [1, 2]
        assert client.transport == "poll"
        assert next(events).id == 3
        assert client.transport == "sse"  # type: ignore[comparison-overlap]  # mypy cannot see it change
        events.close()
    assert server.paths()[:3] == ["events", "poll", "poll"]
    assert server.paths()[-1] == "events"
    assert server.resume_ids()[-1] == "2"


def test_headers_without_a_body_fall_back_to_polling(release: threading.Event) -> None:
    server = Server([blocking(release)], [poll({"id": 8, "type": "conversation.message"}, last=8)])
    with client_for(server, first_byte_timeout=0.05) as client:
        events = take(client, 1)
        assert client.transport == "poll"
    assert [e.id for e in events] == [8]
    assert server.paths()[:2] == ["events", "poll"]


def test_two_stalls_in_a_row_fall_back_to_polling(release: threading.Event) -> None:
    server = Server(
        [blocking(release, PREAMBLE, frame(1)), blocking(release, PREAMBLE)],
        [poll({"id": 2, "type": "conversation.message"}, last=2)],
    )
    with client_for(server, heartbeat_seconds=0.03) as client:
        events = take(client, 2)
        assert client.transport == "poll"
    assert [e.id for e in events] == [1, 2]
    assert server.paths()[:3] == ["events", "events", "poll"]


def test_5xx_is_retried_and_401_is_raised() -> None:
    unavailable = httpx.Response(503, json={"code": "unavailable"}, headers={"Retry-After": "0"})
    unauthenticated = httpx.Response(401, json={"code": "not_authenticated"})
    server = Server([sse(PREAMBLE, frame(1)), unavailable, sse(PREAMBLE, frame(2)), unauthenticated])
    with client_for(server) as client:
        events = client.events()
        assert [e.id for e in islice(events, 2)] == [1, 2]
        with pytest.raises(HTTPStatusError) as caught:
            next(events)
    assert server.resume_ids() == [None, "1", "1", "2"]
    assert caught.value.status == 401
    assert caught.value.code == "not_authenticated"


def test_send_message_retries_503_with_the_same_id() -> None:
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if len(bodies) < 3:
            return httpx.Response(503, json={"code": "unavailable"}, headers={"Retry-After": "0"})
        return httpx.Response(201, json={"id": bodies[-1]["id"], "text": "hi"})

    with Client("http://helpline.test", http_transport=httpx.MockTransport(handle)) as client:
        entry = client.send_message("c1", "hi")
    assert len(bodies) == 3
    assert len({body["id"] for body in bodies}) == 1
    assert entry["id"] == bodies[0]["id"]
    assert len(bodies[0]["id"]) == 32


def test_send_message_retries_transport_errors_then_gives_up() -> None:
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    with Client("http://helpline.test", max_retries=1, http_transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(TransportError) as caught:
            client.send_message("c1", "hi", id="m1")
    assert len(calls) == 2
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_errors_are_translated_not_retried() -> None:
    problem = {"title": "Conflict", "status": 409, "detail": "closed", "code": "conflict"}
    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(409, json=problem, headers={"content-type": "application/problem+json"})

    with Client("http://helpline.test", http_transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(HTTPStatusError) as caught:
            client.send_message("c/../1", "hi")
    assert (caught.value.status, caught.value.code, caught.value.detail) == (409, "conflict", "closed")
    assert len(calls) == 1
    assert calls[0].url.raw_path == b"/api/v1/conversations/c%2F..%2F1/messages"


def test_login_and_customer_session_keep_the_token() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/login":
            user = {"id": "u1", "username": "rep", "display_name": "Rep", "permissions": ["chat_user"]}
            return httpx.Response(
                200, json={"access_token": "staff", "token_type": "bearer", "expires_in": 60, "user": user}
            )
        if request.url.path == "/api/v1/deployments/demo/sessions":
            assert json.loads(request.content) == {"display_name": "Ada"}
            return httpx.Response(
                201, json={"access_token": "cust", "customer_id": "c9", "expires_in": 60, "last_event_id": 17}
            )
        return httpx.Response(200, json={"auth": request.headers.get("authorization")})

    with Client("http://helpline.test/", http_transport=httpx.MockTransport(handle)) as client:
        assert client.login("rep", "pw")["username"] == "rep"
        assert client.request("GET", "/api/v1/me") == {"auth": "Bearer staff"}
        client.start_customer_session("demo", display_name="Ada")
        assert client.request("GET", "/api/v1/me") == {"auth": "Bearer cust"}
        assert (client.customer_id, client.last_event_id) == ("c9", 17)
        assert "cust" not in repr(client)


def test_transfer_needs_exactly_one_target() -> None:
    with Client("http://helpline.test", http_transport=httpx.MockTransport(lambda r: httpx.Response(202))) as c:
        assert c.transfer("c1", to_queue_id="q1") is None
        with pytest.raises(ValueError):
            c.transfer("c1")
        with pytest.raises(ValueError):
            c.transfer("c1", to_user_id="u", to_queue_id="q")


def test_poll_timeout_is_bounded_by_the_protocol() -> None:
    with pytest.raises(ValueError):
        Client("http://helpline.test", poll_timeout=31)


# -- the async client


def async_sse(*chunks: bytes, block: bool = False) -> Callable[[], httpx.Response]:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if block:
            await anyio.sleep_forever()

    headers = {"content-type": "text/event-stream"}
    return lambda: httpx.Response(200, headers=headers, content=body())


def async_client_for(server: Server, **options: Any) -> AsyncClient:
    return AsyncClient(
        "http://helpline.test", token="t0k", http_transport=httpx.MockTransport(server.handle), **options
    )


async def atake(client: AsyncClient, count: int, last_event_id: int | None = None) -> list[Event]:
    found: list[Event] = []
    with anyio.fail_after(5):
        async with aclosing(client.events(last_event_id)) as events:
            async for event in events:
                found.append(event)
                if len(found) == count:
                    break
    return found


async def test_async_reconnects_and_dedups() -> None:
    server = Server(
        [
            async_sse(PREAMBLE, frame(1), frame(2), frame(None, "stream.reconnect")),
            async_sse(PREAMBLE, frame(1), frame(2), frame(3)),
        ]
    )
    async with async_client_for(server) as client:
        events = await atake(client, 3)
    assert [e.id for e in events] == [1, 2, 3]
    assert server.resume_ids()[:2] == [None, "2"]


async def test_async_first_byte_stall_falls_back_to_polling() -> None:
    server = Server([async_sse(block=True)], [poll({"id": 4, "type": "conversation.message"}, last=4)])
    async with async_client_for(server, first_byte_timeout=0.05) as client:
        events = await atake(client, 1)
        assert client.transport == "poll"
    assert [e.id for e in events] == [4]


async def test_async_two_stalls_fall_back_to_polling() -> None:
    server = Server(
        [async_sse(PREAMBLE, frame(1), block=True), async_sse(PREAMBLE, block=True)],
        [poll({"id": 2, "type": "conversation.message"}, last=2)],
    )
    async with async_client_for(server, heartbeat_seconds=0.03) as client:
        events = await atake(client, 2)
        assert client.transport == "poll"
    assert [e.id for e in events] == [1, 2]


async def test_async_send_message_retries_with_the_same_id() -> None:
    ids: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        ids.append(json.loads(request.content)["id"])
        if len(ids) == 1:
            return httpx.Response(503, json={"code": "unavailable"}, headers={"Retry-After": "0"})
        return httpx.Response(201, json={"id": ids[-1]})

    async with AsyncClient("http://helpline.test", http_transport=httpx.MockTransport(handle)) as client:
        await client.send_message("c1", "hi")
    assert len(ids) == 2 and ids[0] == ids[1]


async def test_async_events_cancel_cleanly() -> None:
    server = Server([async_sse(PREAMBLE, frame(1), block=True)])
    seen: list[Event] = []
    async with async_client_for(server) as client:
        with anyio.move_on_after(0.2) as scope:
            async with aclosing(client.events()) as events:
                async for event in events:
                    seen.append(event)
    assert scope.cancelled_caught
    assert [e.id for e in seen] == [1]


async def test_async_401_is_raised() -> None:
    server = Server([lambda: httpx.Response(401, json={"code": "not_authenticated"})])
    async with async_client_for(server) as client:
        with pytest.raises(HTTPStatusError) as caught:
            await atake(client, 1)
    assert caught.value.code == "not_authenticated"
