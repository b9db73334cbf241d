"""The SSE wire format on its own: bytes in, bytes out (helpline/sse.py).

Decoder cases follow the WHATWG HTML standard, § 9.2.5 and § 9.2.6 ("Parsing an event stream",
"Interpreting an event stream"); several inputs are the standard's own examples.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpline import sse
from helpline.sse import (
    InvalidField,
    ServerSentEvent,
    SSEDecodeError,
    SSEDecoder,
    encode_comment,
    encode_event,
    encode_preamble,
    encode_retry,
)


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def test_public_api() -> None:
    assert sorted(sse.__all__) == sorted(
        [
            "InvalidField",
            "SSEDecodeError",
            "SSEDecoder",
            "ServerSentEvent",
            "encode_comment",
            "encode_event",
            "encode_preamble",
            "encode_retry",
        ]
    )
    assert all(hasattr(sse, name) for name in sse.__all__)


# -- encoding


def test_encode_event_frames_id_event_and_one_data_line() -> None:
    frame = encode_event('{"type":"conversation.message"}', event="conversation.message", id=42)
    assert frame == b'id: 42\nevent: conversation.message\ndata: {"type":"conversation.message"}\n\n'


def test_encode_event_without_id_or_event() -> None:
    assert encode_event("x") == b"data: x\n\n"


@pytest.mark.parametrize("data", ["a\nb\nc", "a\r\nb\r\nc", "a\rb\rc", "a\r\nb\nc"])
def test_encode_event_splits_data_on_every_line_ending(data: str) -> None:
    assert encode_event(data) == b"data: a\ndata: b\ndata: c\n\n"


def test_encode_event_keeps_characters_sse_does_not_treat_as_line_endings() -> None:
    data = "a\u2028b\x85c\x0bd\x0ce"
    assert encode_event(data).count(b"data:") == 1
    assert decode(encode_event(data))[0].data == data


def test_encode_event_is_utf8() -> None:
    assert encode_event("héllo ✓ 🎉") == "data: héllo ✓ 🎉\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "\n", "1\r\nevent: injected"])
@pytest.mark.parametrize("field", ["id", "event"])
def test_control_characters_in_id_or_event_are_rejected(field: str, bad: str) -> None:
    with pytest.raises(InvalidField):
        encode_event("x", **{field: bad})


def test_invalid_field_is_a_value_error() -> None:
    assert issubclass(InvalidField, ValueError)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "\r\n"])
def test_comment_with_line_break_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidField):
        encode_comment(bad)


def test_encode_comment() -> None:
    assert encode_comment("heartbeat") == b": heartbeat\n\n"
    assert encode_comment() == b":\n\n"
    assert decode(encode_comment("x") + encode_comment()) == []


def test_encode_retry() -> None:
    assert encode_retry(3000) == b"retry: 3000\n\n"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="retry"):
            encode_retry(bad)  # type: ignore[arg-type]


def test_preamble_is_at_least_two_kib_of_comment_then_a_retry_line() -> None:
    preamble = encode_preamble()
    assert len(preamble) >= 2048
    first_line, _, rest = preamble.partition(b"\n")
    assert first_line.startswith(b":")
    assert len(first_line) + 1 >= 2048  # the padding is in a single comment line
    assert rest == b"retry: 3000\n\n"
    assert preamble.endswith(b"retry: 3000\n\n")


def test_preamble_is_invisible_to_the_decoder_except_for_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(encode_preamble(padding=4096, retry_ms=1500)) == []
    assert decoder.retry == 1500
    assert decoder.lines == 3


@pytest.mark.parametrize("padding", [0, 1, 100, 2048, 10_000])
def test_preamble_padding_is_honoured(padding: int) -> None:
    first_line = encode_preamble(padding=padding).partition(b"\n")[0]
    assert len(first_line) + 1 >= padding


def test_preamble_rejects_negative_padding() -> None:
    with pytest.raises(ValueError, match="padding"):
        encode_preamble(padding=-1)


# -- round trips

safe_field = st.text().filter(lambda s: not any(c in s for c in "\r\n\0"))


def normalised(data: str) -> str:
    return data.replace("\r\n", "\n").replace("\r", "\n")


@given(
    data=st.text(),
    event=safe_field.filter(bool),
    id=safe_field,
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_round_trip_with_any_chunking(data: str, event: str, id: str, cuts: list[int]) -> None:
    frame = encode_event(data, event=event, id=id)
    decoder = SSEDecoder()
    events = [e for chunk in split(frame, cuts) for e in decoder.feed(chunk)]
    assert events == [ServerSentEvent(data=normalised(data), event=event, id=id)]
    assert decoder.last_event_id == id


@given(
    messages=st.lists(st.tuples(st.text(), st.one_of(st.none(), st.integers(min_value=0))), max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
def test_many_events_survive_any_chunking(messages: list[tuple[str, int | None]], cuts: list[int]) -> None:
    stream = encode_preamble(padding=64) + b"".join(
        encode_event(data, id=id) + encode_comment("heartbeat") for data, id in messages
    )
    events = decode(*split(stream, cuts))
    assert [(e.data, e.id) for e in events] == [
        (normalised(data), None if id is None else str(id)) for data, id in messages
    ]


def reference_decode(stream: bytes) -> tuple[list[ServerSentEvent], str, int | None]:
    """The standard's algorithm transcribed as plainly as possible, on the whole stream at once."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # what follows the last line ending is unfinished
    events: list[ServerSentEvent] = []
    data = event_type = id_buffer = last_event_id = ""
    event_id: str | None = None
    event_retry: int | None = None
    retry: int | None = None
    for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data != "":
                events.append(ServerSentEvent(data[:-1], event_type or "message", event_id, event_retry))
            data = event_type = ""
            event_id = event_retry = None
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        elif field == "id" and "\0" not in value:
            id_buffer = event_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = event_retry = int(value)
    return events, last_event_id, retry


stream_pieces = st.sampled_from(
    [
        b"data",
        b"event",
        b"id",
        b"retry",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"x",
        b"42",
        b"\0",
        b"\xef\xbb\xbf",
        b"\xc3\xa9",
        b"\xc3",
        b"\xff",
        b"Data",
    ]
)


@given(
    pieces=st.lists(stream_pieces, max_size=60),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_decoder_matches_the_standard_for_any_input_and_chunking(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    decoder = SSEDecoder()
    events = [e for chunk in split(stream, cuts) for e in decoder.feed(chunk)]
    assert (events, decoder.last_event_id, decoder.retry) == reference_decode(stream)


def test_byte_by_byte_feeding() -> None:
    stream = encode_event("héllo\nwörld 🎉", event="e", id=7) * 3
    events = decode(*(stream[i : i + 1] for i in range(len(stream))))
    assert [e.data for e in events] == ["héllo\nwörld 🎉"] * 3


def test_chunk_split_inside_a_multibyte_character() -> None:
    frame = "data: 🎉\n\n".encode()
    cut = frame.index(b"\xf0") + 2
    assert decode(frame[:cut], frame[cut:]) == [ServerSentEvent(data="🎉")]


# -- decoder corner cases from the standard


def test_standard_example_stock_ticker() -> None:
    assert decode(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [ServerSentEvent(data="YHOO\n+2\n10")]


def test_standard_example_data_without_colon() -> None:
    # "data" alone is a field with an empty value: the first block dispatches "", the second "\n";
    # the third is cut off by the end of the stream and never dispatched.
    events = decode(b"data\n\ndata\ndata\n\ndata:")
    assert [e.data for e in events] == ["", "\n"]


def test_standard_example_only_one_leading_space_is_removed() -> None:
    assert [e.data for e in decode(b"data:test\n\ndata: test\n\ndata:  test\n\n")] == [
        "test",
        "test",
        " test",
    ]


def test_field_without_colon_takes_the_whole_line_as_name() -> None:
    assert decode(b"event\ndata: x\n\n") == [ServerSentEvent(data="x", event="message")]


def test_comments_are_ignored_but_count_as_lines() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": hello\n:\n: data: not an event\n\n") == []
    assert decoder.lines == 4
    assert decoder.feed(b"data: 1\n: between\ndata: 2\n\n") == [ServerSentEvent(data="1\n2")]


def test_unknown_fields_are_ignored_and_names_are_case_sensitive() -> None:
    assert decode(b"Data: no\nfoo: bar\ndata: yes\n\n") == [ServerSentEvent(data="yes")]


def test_leading_bom_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


def test_bom_split_across_chunks_is_stripped() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


def test_only_one_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name, "\ufeffdata", which is no known field.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_later_in_the_stream_is_data() -> None:
    assert decode(b"data: a\n\n", b"\xef\xbb\xbfdata: b\n\n") == [ServerSentEvent(data="a")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"1500", 1500), (b"0", 0), (b"12a", None), (b"", None), (b" 100", None), (b"-5", None), (b"1.5", None)],
)
def test_retry_only_accepts_ascii_digits(value: bytes, expected: int | None) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: " + value + b"\ndata: x\n\n")
    assert decoder.retry == expected
    assert events == [ServerSentEvent(data="x", retry=expected)]


def test_retry_non_ascii_digits_ignored() -> None:
    decoder = SSEDecoder()
    decoder.feed("retry: ١٢٣\n\n".encode())  # Arabic-Indic digits are digits, but not ASCII
    assert decoder.retry is None


def test_invalid_retry_keeps_the_previous_value() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 1000\n\nretry: soon\n\n")
    assert decoder.retry == 1000


def test_cr_only_stream() -> None:
    assert decode(b"id: 1\rdata: a\rdata: b\r\rdata: c\r\r") == [
        ServerSentEvent(data="a\nb", id="1"),
        ServerSentEvent(data="c"),
    ]


def test_crlf_stream() -> None:
    assert decode(b"data: a\r\ndata: b\r\n\r\n") == [ServerSentEvent(data="a\nb")]


def test_mixed_line_endings() -> None:
    assert decode(b"data: a\rdata: b\ndata: c\r\n\n") == [ServerSentEvent(data="a\nb\nc")]


def test_chunk_split_between_cr_and_lf_is_one_line_ending() -> None:
    # Were the CR and the LF counted as two line endings, the blank line in between would dispatch
    # "a" on its own and "b" after it.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ServerSentEvent(data="a\nb")]


def test_chunk_split_between_cr_and_lf_of_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n\r") == [ServerSentEvent(data="a")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r\n\r\n") == [ServerSentEvent(data="b")]


def test_cr_then_empty_chunk_then_lf() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\n\n") == [ServerSentEvent(data="a\nb")]


def test_event_with_empty_data_buffer_is_not_dispatched() -> None:
    assert decode(b"event: ping\nid: 3\n\n") == []


def test_event_type_does_not_leak_into_the_next_event() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [ServerSentEvent(data="x", event="message")]


def test_empty_event_field_means_message() -> None:
    assert decode(b"event:\ndata: x\n\n") == [ServerSentEvent(data="x", event="message")]


def test_last_event_id_persists_across_events() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 5\ndata: a\n\ndata: b\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "5"), ("b", None)]
    assert decoder.last_event_id == "5"


def test_id_without_data_still_moves_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 9\n\n") == []
    assert decoder.last_event_id == "9"


def test_empty_id_resets_last_event_id() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 5\ndata: a\n\nid\ndata: b\n\n")
    assert decoder.last_event_id == ""
    assert events[1].id == ""


def test_id_containing_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 1\n\nid: 2\x003\ndata: x\n\n")
    assert events == [ServerSentEvent(data="x", id=None)]
    assert decoder.last_event_id == "1"


def test_last_event_id_changes_only_when_an_event_is_dispatched() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\n\nid: 2\ndata: cut off")
    assert decoder.last_event_id == "1"


def test_incomplete_event_is_not_dispatched() -> None:
    assert decode(b"data: a\n", b"data: b\n") == []


def test_data_may_contain_colons_and_nul() -> None:
    assert decode(b"data: a: b:c\x00\n\n") == [ServerSentEvent(data="a: b:c\x00")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode(b"data: \xff\xfe ok\n\n") == [ServerSentEvent(data="\ufffd\ufffd ok")]


def test_json_helper() -> None:
    assert ServerSentEvent(data='{"a": [1, 2]}').json() == {"a": [1, 2]}
    with pytest.raises(ValueError):
        ServerSentEvent(data="not json").json()


def test_oversized_line_is_refused() -> None:
    decoder = SSEDecoder(max_size=16)
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"data: " + b"x" * 32)


def test_oversized_event_is_refused() -> None:
    decoder = SSEDecoder(max_size=16)
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"data: 12345678\ndata: 12345678\n")


def test_large_input_in_one_chunk() -> None:
    frames = b"".join(encode_event(f'{{"n": {i}}}', id=i) for i in range(5000))
    events = decode(frames)
    assert len(events) == 5000
    assert events[-1].id == "4999"
