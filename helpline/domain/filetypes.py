"""What a file is, judged by its bytes: the type an attachment is stored and served as (issue 12).

A name or a declared ``Content-Type`` is only a claim; a browser that renders what it is served decides
by content when it may. So the type comes from the content: the magic numbers of the raster images and
PDF we accept, and for text, valid UTF-8 without control characters. Markup (HTML, SVG, XML) is named
as what it is, so that no list of allowed types lets it in by accident: served inline from our origin it
would run script.
"""

from __future__ import annotations

import mimetypes

__all__ = ["INLINE_TYPES", "claimed_type", "name_type", "sniff"]

# Served inline (shown in the browser); anything else is served as a download. Never HTML or SVG.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_MARKUP: tuple[tuple[bytes, str], ...] = (
    (b"<svg", "image/svg+xml"),
    (b"<!doctype html", "text/html"),
    (b"<html", "text/html"),
    (b"<head", "text/html"),
    (b"<body", "text/html"),
    (b"<script", "text/html"),
    (b"<iframe", "text/html"),
    (b"<?xml", "application/xml"),
)
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf"}
# Declared types that claim nothing (what browsers send when they do not know).
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
_TEXT_CONTROLS = frozenset(range(32)) - {9, 10, 12, 13}


def sniff(content: bytes) -> str | None:
    """The type of ``content``, or None when it is none we recognise (an executable, an archive...)."""
    for signature, kind in _SIGNATURES:
        if content.startswith(signature):
            return kind
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if not content:
        return None
    text = content[3:] if content.startswith(b"\xef\xbb\xbf") else content
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(char) in _TEXT_CONTROLS or char == "\x7f" for char in decoded):
        return None
    head = decoded.lstrip()[:512].lower().encode()
    for start, kind in _MARKUP:
        if head.startswith(start):
            return kind
    if b"<svg" in head or b"<html" in head or b"<script" in head:
        return "text/html" if b"<svg" not in head else "image/svg+xml"
    return "text/plain"


def claimed_type(declared: str | None) -> str | None:
    """A declared ``Content-Type`` without parameters, normalised; None when it claims nothing."""
    kind = (declared or "").split(";", 1)[0].strip().lower()
    kind = _ALIASES.get(kind, kind)
    return None if kind in _GENERIC else kind


def name_type(name: str) -> str | None:
    """The type a file name's extension claims, when it names one we can tell by content."""
    guessed, _encoding = mimetypes.guess_type(name, strict=False)
    guessed = _ALIASES.get(guessed or "", guessed)
    known = {kind for _signature, kind in _SIGNATURES} | {kind for _start, kind in _MARKUP}
    if guessed in known | {"image/webp", "text/plain"}:
        return guessed
    return None
