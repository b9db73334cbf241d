"""The server-sent events wire format, as pure code: bytes in, bytes out, no I/O.

The server encodes with it and the Python client decodes with it, so both ends share one reading of
the framing. Everything here follows the WHATWG HTML standard, section 9.2 "Server-sent events"
(https://html.spec.whatwg.org/multipage/server-sent-events.html); the decoder implements its
"interpreting an event stream" algorithm step by step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "InvalidField",
    "SSEDecodeError",
    "SSEDecoder",
    "ServerSentEvent",
    "encode_comment",
    "encode_event",
    "encode_preamble",
    "encode_retry",
]

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_COLON = 0x3A


class InvalidField(ValueError):
    """A field value would break the framing.

    A CR or LF in `id` or `event` ends the line early, and whatever follows becomes a field of its own:
    whoever controls the value could inject events into someone else's stream. A NUL makes browsers
    ignore the `id`, silently breaking resumption. Both are refused rather than escaped, because no
    legitimate id or event name contains them.
    """


class SSEDecodeError(ValueError):
    """The stream holds a line or an event larger than the decoder's `max_size`."""


def _checked(name: str, value: str, forbidden: str = "\r\n\0") -> str:
    if any(char in value for char in forbidden):
        raise InvalidField(f"the {name} field must not contain {' or '.join(map(repr, forbidden))}")
    return value


def encode_event(data: str, *, event: str | None = None, id: str | int | None = None) -> bytes:
    """Frame one event: optional `id:` and `event:` lines, one `data:` line per line of `data`, a blank line.

    `data` is split on CRLF, CR and LF, the three line endings the decoder recognises, so it survives
    the trip exactly (with its line endings normalised to LF). Other characters that `str.splitlines`
    treats as line breaks (U+2028, U+0085, ...) are not line endings in SSE and stay inside the line.
    """
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {_checked('id', str(id))}\n")
    if event is not None:
        parts.append(f"event: {_checked('event', event)}\n")
    if "\r" in data or "\n" in data:
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    else:
        lines = [data]
    parts.extend(f"data: {line}\n" for line in lines)
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """Frame a comment (`: text`), which clients ignore: used for heartbeats that keep idle streams alive."""
    if not text:
        return b":\n\n"
    return b": " + _checked("comment", text, forbidden="\r\n").encode() + b"\n\n"


def encode_retry(milliseconds: int) -> bytes:
    """Frame a `retry:` line: how long a browser waits before it reconnects a dropped stream."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int) or milliseconds < 0:
        raise ValueError("retry must be a non-negative integer number of milliseconds")
    return f"retry: {milliseconds}\n\n".encode()


def encode_preamble(padding: int = 2048, retry_ms: int = 3000) -> bytes:
    """The first bytes of every stream: a comment line of at least `padding` bytes, then a `retry:` line.

    Why padding: some intermediaries between server and browser hold back the start of a response
    until they have seen a certain amount of it — antivirus web shields and TLS-inspection proxies
    that scan content, some corporate proxies, and older browsers' own sniffing. An event stream
    starts with a few bytes and then idles, so without padding the first events can sit in such a
    buffer for minutes. 2 KiB is the threshold commonly reported for those buffers (docs/protocol.md,
    "Framing"), and it costs nothing: it is sent once per connection. A comment is the one thing a
    client is guaranteed to ignore.

    Why `retry:`: browsers pick different reconnection delays when the server names none, so naming
    one makes every client come back at the same, known pace after a dropped connection.
    """
    if padding < 0:
        raise ValueError("padding must not be negative")
    label = ": helpline event stream; padding for buffering intermediaries"
    # The comment itself (without its line ending) is `padding` bytes: "at least 2 KiB" by any count.
    return (label.ljust(padding) + "\n").encode() + encode_retry(retry_ms)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    `id` is the value of this event's own `id:` field, or None when it had none. (A browser's
    `MessageEvent.lastEventId` would instead repeat the previous id; that value, which is what a client
    sends back as `Last-Event-ID`, is `SSEDecoder.last_event_id`. Keeping them apart lets callers tell
    ephemeral events, which carry no id, from stored ones.) `retry` is the value of this event's own
    valid `retry:` field, if any.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """Decode `data` as JSON (raises `json.JSONDecodeError`, a `ValueError`, when it is not)."""
        return json.loads(self.data)


class SSEDecoder:
    """Incremental decoder: feed it chunks as they arrive, get back the events they complete.

    Chunks may be split anywhere, including inside a UTF-8 character or between the CR and LF of a
    CRLF. The decoder works on bytes and hands whole lines to `bytes.splitlines` (which breaks
    exactly on CRLF, CR and LF, like the standard), so it never loops over single bytes in Python.

    Attributes, updated as the stream is fed:
    - `last_event_id`: the standard's "last event ID string", the value to send as `Last-Event-ID`
      when reconnecting; it persists across events and is updated when an event is dispatched.
    - `retry`: the latest valid `retry:` value in milliseconds, or None.
    - `lines`: how many complete lines (comments included) have been read; a stream that delivers
      lines is alive, whether or not they carry events.

    `max_size` bounds memory: a line, or an event's data, larger than that raises `SSEDecodeError`.
    """

    def __init__(self, *, max_size: int = 1 << 20) -> None:
        self.max_size = max_size
        self.last_event_id = ""
        self.retry: int | None = None
        self.lines = 0
        self._pending: list[bytes] = []  # the start of the current, unfinished line
        self._pending_size = 0
        self._expect_bom = True
        self._skip_lf = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._event = b""
        self._id_buffer = ""
        self._event_id: str | None = None
        self._event_retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume `chunk`; return the events whose closing blank line it contained, in order."""
        if self._skip_lf and chunk:
            # The previous chunk ended with CR: if this one starts with LF, that is the same CRLF.
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if not chunk:
            return []
        if self._expect_bom:
            # The standard strips one UTF-8 BOM, and only at the very start of the stream.
            chunk = b"".join(self._pending) + chunk
            self._pending, self._pending_size = [], 0
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._pending, self._pending_size = [chunk], len(chunk)
                return []
            self._expect_bom = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        # The pending bytes hold no line ending, so only the new chunk needs searching.
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self._hold(chunk)
            return []
        if self._pending:
            complete = b"".join(self._pending) + chunk[: end + 1]
            self._pending, self._pending_size = [], 0
        else:
            complete = chunk[: end + 1] if end + 1 < len(chunk) else chunk
        if end + 1 < len(chunk):
            self._hold(chunk[end + 1 :])
        elif chunk[end] == _CR:
            self._skip_lf = True
        lines = complete.splitlines()
        self.lines += len(lines)
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line[0] != _COLON:  # lines starting with a colon are comments
                self._process_field(line)
        return events

    def _hold(self, part: bytes) -> None:
        """Keep the start of an unfinished line; a list, so a long line costs linear time, not quadratic."""
        self._pending_size += len(part)
        if self._pending_size > self.max_size:
            raise SSEDecodeError(f"a line is longer than {self.max_size} bytes")
        self._pending.append(part)

    def _process_field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_size:
                raise SSEDecodeError(f"an event's data is larger than {self.max_size} bytes")
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._id_buffer = self._event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # ASCII digits only, and at least one
                self.retry = self._event_retry = int(value)
        # any other field name is ignored, as the standard requires

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        event_id, self._event_id = self._event_id, None
        retry, self._event_retry = self._event_retry, None
        event_type, self._event = self._event, b""
        if not self._data:
            return None
        data = b"\n".join(self._data).decode("utf-8", "replace")
        self._data = []
        self._data_size = 0
        return ServerSentEvent(
            data=data,
            event=event_type.decode("utf-8", "replace") or "message",
            id=event_id,
            retry=retry,
        )
