"""Attachments: upload a file into a conversation, send it with a message, serve it to who may read it.

An upload is checked before anything is kept: the caller may write in the conversation, the file is
within the deployment's size limit (413), its content is a type the deployment accepts (415), and what
it claims to be, by its declared type or its name, is what its content is (422). An image must also
decode within the pixel limit, and gets a thumbnail (domain/thumbnails.py). Until a message carries it,
only its uploader sees it; a message may carry it once.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from helpline.config import Settings
from helpline.domain import filetypes
from helpline.domain import permissions as perms
from helpline.domain.thumbnails import Thumbnailer
from helpline.errors import Conflict, NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from helpline.records import AttachmentRecord, Conversation, Deployment, Principal, new_id, utcnow
from helpline.store import Store, StoreSession
from helpline.store.attachments import Blobs, thumbnail_key

__all__ = ["Attachments", "Download", "attach"]

MAX_PER_MESSAGE = 10
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass(frozen=True, slots=True)
class Download:
    record: AttachmentRecord
    content: bytes
    content_type: str  # the file's, or its thumbnail's

    @property
    def inline(self) -> bool:
        """Images and PDF are shown in the browser; everything else downloads (never inline HTML or SVG)."""
        return self.content_type in filetypes.INLINE_TYPES


class Attachments:
    def __init__(self, store: Store, blobs: Blobs, settings: Settings) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.default_types = tuple(t.strip() for t in settings.attachment_types.split(",") if t.strip())
        self.thumbnails = Thumbnailer(settings.attachment_max_pixels)

    def limits(self, deployment: Deployment | None) -> tuple[int, tuple[str, ...]]:
        """The deployment's size limit and accepted types (the server's where it sets none)."""
        ceiling = self.settings.attachment_max_bytes
        if deployment is None:
            return ceiling, self.default_types
        size = min(ceiling, deployment.attachment_max_bytes or ceiling)
        return size, deployment.attachment_types if deployment.attachment_types is not None else self.default_types

    async def upload(
        self, principal: Principal, conversation_id: str, name: str, declared: str | None, content: bytes
    ) -> dict[str, Any]:
        async with self.store.read() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
            perms.require_can_write(principal, conversation)
            if conversation.status == "closed":
                raise Conflict("the conversation is closed")
            max_bytes, accepted = self.limits(await s.deployment(id=conversation.deployment_id))
        if len(content) > max_bytes:
            raise PayloadTooLarge(f"files are limited to {max_bytes} bytes here", max_bytes=max_bytes)
        if not content:
            raise ValidationFailed("the file is empty")
        content_type = check_type(safe_name(name), declared, content, accepted)
        thumbnail = await self.thumbnails.make(content, content_type)  # 413/422 for an image it cannot draw
        record = AttachmentRecord(
            id=new_id("att"),
            conversation_id=conversation.id,
            uploader_id=principal.id,
            name=safe_name(name),
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            storage=self.blobs.kind,
            message_event_id=None,
            created_at=utcnow(),
            thumbnail_type=thumbnail.content_type if thumbnail else None,
        )
        keys = [record.id]
        try:
            column = await self.blobs.save(record.id, content)
            thumbnail_column = None
            if thumbnail is not None:
                keys.append(thumbnail_key(record.id))
                thumbnail_column = await self.blobs.save(keys[-1], thumbnail.content)
            async with self.store.side_write() as s:  # no event: beside the single writer
                await s.insert_attachment(record, column, thumbnail_column)
        except BaseException:
            for key in keys:
                await self.blobs.discard(key)
            raise
        return record.public()

    async def download(self, principal: Principal, attachment_id: str) -> Download:
        """The file, for whoever may read its conversation's entries (its uploader, before it is sent)."""
        record, column = await self._readable(principal, attachment_id, thumbnail=False)
        try:
            content = await self.blobs.load(record.id, column)
        except OSError:
            raise NotFound("the attachment's file is missing") from None
        return Download(record, content, record.content_type)

    async def thumbnail(self, principal: Principal, attachment_id: str) -> Download:
        """An image's thumbnail, for exactly those who may download the image; 404 for other files."""
        record, column = await self._readable(principal, attachment_id, thumbnail=True)
        if record.thumbnail_type is None:
            raise NotFound("this attachment has no thumbnail (it is not an image)")
        try:
            content = await self.blobs.load(thumbnail_key(record.id), column)
        except OSError:
            raise NotFound("the thumbnail's file is missing") from None
        return Download(record, content, record.thumbnail_type)

    async def _readable(
        self, principal: Principal, attachment_id: str, *, thumbnail: bool
    ) -> tuple[AttachmentRecord, bytes | None]:
        """The attachment and, when the database keeps the bytes, the file's (or its thumbnail's)."""
        async with self.store.read() as s:
            record = await s.attachment(attachment_id)
            if record is None:
                perms.require_staff_chat(principal)
                raise NotFound("no such attachment")
            conversation = perms.require_visible(principal, await s.conversation(record.conversation_id))
            perms.require_entries_access(principal, conversation)
            if record.message_event_id is None and record.uploader_id != principal.id:
                raise NotFound("no such attachment")  # not sent yet: its uploader's alone
            column = None
            if record.storage == "database":
                read = s.attachment_thumbnail if thumbnail else s.attachment_content
                column = await read(record.id)
        return record, column


async def attach(
    s: StoreSession, principal: Principal, conversation: Conversation, attachment_ids: list[str]
) -> list[AttachmentRecord]:
    """The caller's own uploads to this conversation, not sent before, for the message it is writing."""
    wanted = list(dict.fromkeys(attachment_ids))
    if len(wanted) > MAX_PER_MESSAGE:
        raise ValidationFailed(f"a message carries at most {MAX_PER_MESSAGE} attachments")
    found = {r.id: r for r in await s.attachments(wanted)}
    records = []
    for attachment_id in wanted:
        record = found.get(attachment_id)
        if record is None or record.conversation_id != conversation.id or record.uploader_id != principal.id:
            raise ValidationFailed(f"no attachment {attachment_id!r} of yours in this conversation")
        if record.message_event_id is not None:
            raise Conflict(f"attachment {attachment_id!r} was already sent")
        records.append(record)
    return records


def check_type(name: str, declared: str | None, content: bytes, accepted: tuple[str, ...]) -> str:
    """The content's type, if accepted and what the upload claims; else 415 (refused) or 422 (mismatch)."""
    claimed = filetypes.claimed_type(declared)
    if claimed is not None and claimed not in accepted:
        raise UnsupportedMediaType(f"{claimed} files are not accepted here", accepted=list(accepted))
    detected = filetypes.sniff(content)
    if detected is None or detected not in accepted:
        what = f"{detected} files" if detected else "files of this kind"
        raise UnsupportedMediaType(f"{what} are not accepted here", accepted=list(accepted))
    named = filetypes.name_type(name)
    for source, kind in (("declared type", claimed), ("file name", named)):
        if kind is not None and kind != detected:
            raise ValidationFailed(f"the file's content is {detected}, but its {source} says {kind}", detected=detected)
    return detected


def safe_name(name: str) -> str:
    """A file name to show and to offer for download: no path, no control characters, at most 255."""
    cleaned = unicodedata.normalize("NFC", name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("", cleaned).strip().strip(".")
    return (cleaned or "file")[:255]
