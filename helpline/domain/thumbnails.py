"""Thumbnails of image attachments, made once on upload (issue 12: "image thumbnails in the transcript").

A transcript shows an image as a small picture; fetching a 10 MiB photo for it would cost the reader's
data and memory for nothing. So the server draws a copy bounded to ``MAX_SIDE`` pixels on its long side
when the image is uploaded, and serves it beside the file.

Decoding is where an image can hurt: a few kilobytes of PNG may claim 100,000 x 100,000 pixels and
expand to gigabytes. The image's header is read first (Pillow's ``open`` decodes nothing yet) and an
image over ``attachment_max_pixels`` is refused with 413 before any pixel is decoded. Pillow's own
decompression-bomb check stays on as a second fence; its error (and its warning, when warnings are
errors) means the same 413. Decoding runs in a worker thread, a few at a time, so neither the event
loop nor the memory of many simultaneous uploads is at stake.

What is kept is pixels only: the EXIF orientation is applied, then every piece of metadata (EXIF with
its GPS position, ICC profiles, text chunks, comments) is dropped. The output is PNG where the source
is a lossless kind or has transparency, JPEG for photographs.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from helpline.errors import PayloadTooLarge, ValidationFailed

__all__ = ["IMAGE_TYPES", "MAX_SIDE", "Thumbnail", "Thumbnailer", "render"]

MAX_SIDE = 320
# The types a thumbnail is made of, and the Pillow decoder each may be opened with (no other: a file we
# sniffed as PNG is never handed to another format's parser).
IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
_LOSSLESS = frozenset({"image/png", "image/gif"})
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError)


@dataclass(frozen=True, slots=True)
class Thumbnail:
    content_type: str
    content: bytes
    width: int
    height: int


class Thumbnailer:
    """Makes thumbnails in worker threads, at most ``concurrency`` at once (each may decode a large image)."""

    def __init__(self, max_pixels: int, concurrency: int = 2) -> None:
        self.max_pixels = max_pixels
        self._slots = asyncio.Semaphore(concurrency)

    async def make(self, content: bytes, content_type: str) -> Thumbnail | None:
        """The thumbnail of an image (None for other types); 413 for an image too large to decode, 422
        for one that cannot be read."""
        if content_type not in IMAGE_TYPES:
            return None
        async with self._slots:
            return await asyncio.to_thread(render, content, content_type, self.max_pixels)


def render(content: bytes, content_type: str, max_pixels: int, max_side: int = MAX_SIDE) -> Thumbnail:
    """The thumbnail of ``content`` (an image of ``content_type``, as sniffed), bounded to ``max_side``."""
    try:
        image = Image.open(io.BytesIO(content), formats=[IMAGE_TYPES[content_type]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(None, max_pixels) from None
    except _DECODE_ERRORS:
        raise ValidationFailed("the image cannot be read (damaged, or not the image it looks like)") from None
    with image:
        pixels = image.width * image.height
        if pixels > max_pixels or pixels <= 0:
            raise _too_large(image.size, max_pixels)
        try:
            image.thumbnail((max_side, max_side))  # decodes (JPEG at a reduced scale), never enlarges
            upright = ImageOps.exif_transpose(image)  # a copy, turned as the camera meant
            transparent = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            clean = upright.convert("RGBA" if transparent else "RGB")
            clean.info = {}  # nothing but pixels leaves: no EXIF, ICC profile, text chunks or comments
            out = io.BytesIO()
            if transparent or content_type in _LOSSLESS:
                clean.save(out, format="PNG", optimize=True)
                kind = "image/png"
            else:
                clean.save(out, format="JPEG", quality=85, optimize=True)
                kind = "image/jpeg"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_large(image.size, max_pixels) from None
        except _DECODE_ERRORS:
            raise ValidationFailed("the image cannot be read (damaged or cut short)") from None
    return Thumbnail(kind, out.getvalue(), clean.width, clean.height)


def _too_large(size: tuple[int, int] | None, max_pixels: int) -> PayloadTooLarge:
    what = f"{size[0]} x {size[1]} pixels" if size else "too many pixels"
    return PayloadTooLarge(
        f"the image is too large to show ({what}; at most {max_pixels} pixels)", max_pixels=max_pixels
    )
