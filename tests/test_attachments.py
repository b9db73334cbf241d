"""Attachments (issue 12): upload, send with a message, download only by who may read the conversation;
types judged by content; size limits per deployment; storage by backend. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import func, select

from helpline import create_app
from helpline.domain import filetypes
from helpline.store import schema
from tests.conftest import make_settings
from tests.files import EXECUTABLE, HTML, SVG, bilevel_png, pdf, png, png_claiming
from tests.world import World, assign_to_trainee

CEILING = 64 * 1024  # the server's limit in these tests, so that "too large" stays cheap


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(database_url, router_enabled=False, attachment_max_bytes=CEILING)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def upload(
    world: World, who: str, conversation_id: str, name: str, content: bytes, content_type: str | None
) -> httpx.Response:
    file: tuple[Any, ...] = (name, content) if content_type is None else (name, content, content_type)
    return await world.client.post(
        f"/api/v1/conversations/{conversation_id}/attachments", files={"file": file}, headers=world.auth(who)
    )


async def send(world: World, who: str, conversation_id: str, message_id: str, ids: list[str], text: str = "") -> Any:
    return await world.call(
        who,
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        {"id": message_id, "text": text, "attachment_ids": ids},
    )


async def test_a_customer_sends_an_image_and_the_rep_gets_it_inline(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    image = png()
    uploaded = await upload(world, "alice", conversation, "photo.png", image, "image/png")
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert attachment["name"] == "photo.png" and attachment["content_type"] == "image/png"
    assert attachment["size"] == len(image) and attachment["id"].startswith("att_")

    sent = await send(world, "alice", conversation, "with-photo", [attachment["id"]])
    assert sent.status_code == 201, sent.text
    assert sent.json()["text"] == "" and sent.json()["attachments"] == [attachment]
    entries = (await world.call("rep", "GET", f"/api/v1/conversations/{conversation}/entries")).json()["entries"]
    assert [e["attachments"] for e in entries if e["type"] == "conversation.message"] == [[attachment]]

    served = await world.call("rep", "GET", f"/api/v1/attachments/{attachment['id']}")
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"].startswith("inline;")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]


async def test_a_rep_sends_a_pdf_and_the_customer_downloads_it(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    document = pdf()
    uploaded = (await upload(world, "rep", conversation, "invoice 42.pdf", document, "application/pdf")).json()
    sent = await send(world, "rep", conversation, "the-invoice", [uploaded["id"]], text="Here it is")
    assert sent.status_code == 201 and sent.json()["attachments"][0]["content_type"] == "application/pdf"
    served = await world.call("alice", "GET", f"/api/v1/attachments/{uploaded['id']}")
    assert served.status_code == 200 and served.content == document
    assert served.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''invoice%2042.pdf" in served.headers["content-disposition"]


async def test_text_is_accepted_but_always_downloads(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    note = "Order 1234 — twice, please.\n".encode()
    uploaded = await upload(world, "alice", conversation, "notes.txt", note, "text/plain")
    assert uploaded.status_code == 201 and uploaded.json()["content_type"] == "text/plain"
    await send(world, "alice", conversation, "with-notes", [uploaded.json()["id"]])
    served = await world.call("rep", "GET", f"/api/v1/attachments/{uploaded.json()['id']}")
    assert served.headers["content-disposition"].startswith("attachment;")
    assert served.headers["content-type"].startswith("text/plain") and served.content == note


@pytest.mark.parametrize(
    ("name", "content", "declared", "status"),
    [
        ("photo.png", HTML, "image/png", 415),  # markup dressed as an image
        ("logo.svg", SVG, "image/svg+xml", 415),  # never SVG: it runs script
        ("page.html", HTML, "text/html", 415),
        ("setup.exe", EXECUTABLE, "application/octet-stream", 415),  # nothing we know by content
        ("photo.png", EXECUTABLE, "image/png", 415),
        ("invoice.pdf", png(), "application/pdf", 422),  # an image claiming to be a PDF
        ("invoice.pdf", png(), None, 422),  # the name claims it
        ("invoice.pdf", png(), "application/octet-stream", 422),
        ("photo.png", pdf(), "image/png", 422),
    ],
)
async def test_a_file_is_judged_by_its_content(
    app: FastAPI, world: World, name: str, content: bytes, declared: str | None, status: int
) -> None:
    refused = await upload(world, "alice", world.conversations["alice"], name, content, declared)
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == {415: "unsupported_media_type", 422: "validation_error"}[status]


async def test_size_limits_per_deployment_and_per_server(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    big = png() + b"\x00" * 5000
    assert (await upload(world, "alice", conversation, "big.png", big, "image/png")).status_code == 201
    changed = await world.call(
        "admin", "PATCH", f"/api/v1/admin/deployments/{world.deployment_id}", {"attachment_max_bytes": 4000}
    )
    assert changed.status_code == 200 and changed.json()["attachment_max_bytes"] == 4000
    refused = await upload(world, "alice", conversation, "big.png", big, "image/png")
    assert refused.status_code == 413 and refused.json()["code"] == "payload_too_large"
    # Over the server's own limit: refused before the body is read (the upload path's body cap).
    huge = png() + b"\x00" * (2 * CEILING)
    assert (await upload(world, "alice", conversation, "huge.png", huge, "image/png")).status_code == 413
    # A deployment that accepts only PDF.
    await world.call(
        "admin",
        "PATCH",
        f"/api/v1/admin/deployments/{world.deployment_id}",
        {"attachment_max_bytes": None, "attachment_types": ["application/pdf"]},
    )
    assert (await upload(world, "alice", conversation, "p.png", png(), "image/png")).status_code == 415
    assert (await upload(world, "alice", conversation, "p.pdf", pdf(), "application/pdf")).status_code == 201
    # JSON bodies keep their 64 KiB limit.
    text = await world.client.post(
        f"/api/v1/conversations/{conversation}/typing",
        content=b'{"state":"started","x":"' + b"a" * 70_000 + b'"}',
        headers={**world.auth("alice"), "Content-Type": "application/json"},
    )
    assert text.status_code == 413


async def test_downloads_are_for_those_who_may_read_the_conversation(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    attachment = (await upload(world, "alice", conversation, "photo.png", png(), "image/png")).json()["id"]
    path = f"/api/v1/attachments/{attachment}"
    # Not sent yet: only its uploader sees it.
    assert (await world.call("alice", "GET", path)).status_code == 200
    assert (await world.call("rep", "GET", path)).status_code == 404
    assert (await send(world, "alice", conversation, "sent", [attachment])).status_code == 201

    assert (await world.call("rep", "GET", path)).status_code == 200
    assert (await world.call("supervisor", "GET", path)).status_code == 200
    assert (await world.call("bob", "GET", path)).status_code == 404  # another customer: it does not exist
    assert (await world.call("rep2", "GET", path)).status_code == 404  # staff who is not a party
    assert (await world.call("nochat", "GET", path)).status_code == 403  # no chat_user
    assert (await world.client.get(path)).status_code == 401
    await assign_to_trainee(app, world, conversation)  # handles the session, may not read its entries
    denied = await world.call("trainee", "GET", path)
    assert denied.status_code == 403 and denied.json()["permission"] == "access_conversation_entries"
    assert (await world.call("bob", "GET", "/api/v1/attachments/att_" + "0" * 32)).status_code == 404


async def test_uploading_and_sending_are_for_parties_who_may_write(app: FastAPI, world: World) -> None:
    alice, bob = world.conversations["alice"], world.conversations["bob"]
    assert (await upload(world, "bob", alice, "x.png", png(), "image/png")).status_code == 404
    assert (await upload(world, "supervisor", alice, "x.png", png(), "image/png")).status_code == 403
    await assign_to_trainee(app, world, bob)
    assert (await upload(world, "trainee", bob, "x.png", png(), "image/png")).status_code == 403
    mine = (await upload(world, "alice", alice, "x.png", png(), "image/png")).json()["id"]
    # Someone else's upload, or one from another conversation, cannot be sent.
    assert (await send(world, "rep", alice, "not-mine", [mine])).status_code == 422
    bobs = (await upload(world, "bob", bob, "y.png", png(), "image/png")).json()["id"]
    assert (await send(world, "alice", alice, "other-conversation", [bobs])).status_code == 422
    assert (await send(world, "alice", alice, "first", [mine])).status_code == 201
    assert (await send(world, "alice", alice, "first", [mine])).status_code == 200  # a retry: the same entry
    again = await send(world, "alice", alice, "second", [mine])
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert (await send(world, "alice", alice, "nothing", [])).status_code == 422  # no text, no files
    missing = await world.client.post(
        f"/api/v1/conversations/{alice}/attachments", data={"other": "x"}, headers=world.auth("alice")
    )
    assert missing.status_code == 422
    await world.call("alice", "POST", f"/api/v1/conversations/{alice}/close", {})
    assert (await upload(world, "alice", alice, "x.png", png(), "image/png")).status_code == 409


async def test_files_are_kept_where_the_backend_says(app: FastAPI, world: World, database_url: str) -> None:
    conversation = world.conversations["alice"]
    image = png(rgb=(1, 2, 3))
    attachment = (await upload(world, "alice", conversation, "photo.png", image, "image/png")).json()["id"]
    blobs = app.state.services.attachments.blobs
    if database_url.startswith("sqlite"):
        assert blobs.kind == "disk"
        stored = Path(database_url.removeprefix("sqlite:///") + "-attachments") / attachment
        assert stored.read_bytes() == image
    else:
        assert blobs.kind == "database"
        async with app.state.services.store.read() as s:
            assert await s.attachment_content(attachment) == image


def test_the_sniffer_names_what_it_sees() -> None:
    assert filetypes.sniff(png()) == "image/png"
    assert filetypes.sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert filetypes.sniff(b"GIF89a....") == "image/gif"
    assert filetypes.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert filetypes.sniff(pdf()) == "application/pdf"
    assert filetypes.sniff(b"plain words\n") == "text/plain"
    assert filetypes.sniff(b"  \n<HTML><b>hi</b>") == "text/html"
    assert filetypes.sniff(SVG) == "image/svg+xml"
    assert filetypes.sniff(b'<?xml version="1.0"?><svg/>') == "application/xml"
    assert filetypes.sniff(b"text with a \x00 NUL") is None
    assert filetypes.sniff(b"\xff\xfe not utf-8") is None
    assert filetypes.sniff(b"") is None
    assert filetypes.claimed_type("image/JPG; q=1") == "image/jpeg"
    assert filetypes.claimed_type("application/octet-stream") is None
    assert filetypes.name_type("a.PDF") == "application/pdf" and filetypes.name_type("a.md") is None


async def test_a_backup_of_sqlite_takes_the_files_along(app: FastAPI, world: World, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL keeps the files in the database (pg_dump takes them along)")
    from helpline.store.backup import backup_sqlite

    conversation = world.conversations["alice"]
    image = png(rgb=(9, 9, 9))
    attachment = (await upload(world, "alice", conversation, "photo.png", image, "image/png")).json()["id"]
    await send(world, "alice", conversation, "with-photo", [attachment])
    target = Path(database_url.removeprefix("sqlite:///")).with_name("backup.db")
    done = backup_sqlite(database_url, target)
    assert done.attachments == 1
    assert (Path(f"{target}-attachments") / attachment).read_bytes() == image
    thumbnail = (await world.call("alice", "GET", f"/api/v1/attachments/{attachment}/thumbnail")).content
    assert (Path(f"{target}-attachments") / f"{attachment}_thumb").read_bytes() == thumbnail


# -- thumbnails ---------------------------------------------------------------------------------
def photo_with_metadata(width: int, height: int) -> bytes:
    """A JPEG as a phone writes it: EXIF with a camera, a GPS position and "turn me 90°" (orientation 6)."""
    image = Image.new("RGB", (width, height), (30, 120, 200))
    exif = image.getexif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"taken at home")
    return out.getvalue()


async def sent_attachment(world: World, who: str, name: str, content: bytes, content_type: str) -> str:
    conversation = world.conversations["alice"]
    uploaded = await upload(world, who, conversation, name, content, content_type)
    assert uploaded.status_code == 201, uploaded.text
    attachment: str = uploaded.json()["id"]
    assert (await send(world, who, conversation, f"with-{attachment}", [attachment])).status_code == 201
    return attachment


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(1000, 600, (320, 192)), (300, 1200, (80, 320)), (24, 16, (24, 16))],
)
async def test_an_image_has_a_thumbnail_bounded_on_its_long_side(
    app: FastAPI, world: World, width: int, height: int, expected: tuple[int, int]
) -> None:
    attachment = await sent_attachment(world, "alice", "photo.png", png(width, height), "image/png")
    served = await world.call("rep", "GET", f"/api/v1/attachments/{attachment}/thumbnail")
    assert served.status_code == 200, served.text
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    full = await world.call("rep", "GET", f"/api/v1/attachments/{attachment}")
    for header in ("cache-control", "content-security-policy", "cross-origin-resource-policy"):
        assert served.headers[header] == full.headers[header], header
    assert served.headers["content-disposition"].startswith("inline;")
    with Image.open(io.BytesIO(served.content)) as thumbnail:
        assert thumbnail.format == "PNG" and thumbnail.size == expected


async def test_a_photo_thumbnail_is_upright_and_carries_no_metadata(app: FastAPI, world: World) -> None:
    photo = photo_with_metadata(1200, 900)
    with Image.open(io.BytesIO(photo)) as original:  # the test's own photo does carry it
        assert original.getexif()[0x010F] == "PhoneMaker" and "comment" in original.info
    attachment = await sent_attachment(world, "alice", "IMG_0001.jpg", photo, "image/jpeg")
    served = await world.call("alice", "GET", f"/api/v1/attachments/{attachment}/thumbnail")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert b"PhoneMaker" not in served.content and b"taken at home" not in served.content
    with Image.open(io.BytesIO(served.content)) as thumbnail:
        assert thumbnail.size == (240, 320)  # turned as orientation 6 says, then bounded
        assert not thumbnail.getexif() and "exif" not in thumbnail.info and "icc_profile" not in thumbnail.info
        assert "comment" not in thumbnail.info
    # The file itself is served as it was uploaded.
    assert (await world.call("alice", "GET", f"/api/v1/attachments/{attachment}")).content == photo


async def test_files_that_are_not_images_have_no_thumbnail(app: FastAPI, world: World) -> None:
    for name, content, kind in [("invoice.pdf", pdf(), "application/pdf"), ("notes.txt", b"hello\n", "text/plain")]:
        attachment = await sent_attachment(world, "alice", name, content, kind)
        assert (await world.call("alice", "GET", f"/api/v1/attachments/{attachment}")).status_code == 200
        missing = await world.call("alice", "GET", f"/api/v1/attachments/{attachment}/thumbnail")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "not_found"


async def test_thumbnails_are_served_exactly_to_who_may_download_the_file(app: FastAPI, world: World) -> None:
    conversation = world.conversations["alice"]
    attachment = (await upload(world, "alice", conversation, "photo.png", png(), "image/png")).json()["id"]
    paths = [f"/api/v1/attachments/{attachment}", f"/api/v1/attachments/{attachment}/thumbnail"]

    async def statuses(who: str) -> list[int]:
        return [(await world.call(who, "GET", path)).status_code for path in paths]

    assert await statuses("alice") == [200, 200]
    assert await statuses("rep") == [404, 404]  # not sent yet: its uploader's alone
    assert (await send(world, "alice", conversation, "sent", [attachment])).status_code == 201
    for who, status in [("rep", 200), ("supervisor", 200), ("bob", 404), ("rep2", 404), ("nochat", 403)]:
        assert await statuses(who) == [status, status], who
    assert [(await world.client.get(path)).status_code for path in paths] == [401, 401]
    await assign_to_trainee(app, world, conversation)  # handles the session, may not read its entries
    for path in paths:
        denied = await world.call("trainee", "GET", path)
        assert denied.status_code == 403 and denied.json()["permission"] == "access_conversation_entries"
    unknown = "/api/v1/attachments/att_" + "0" * 32 + "/thumbnail"
    assert (await world.call("bob", "GET", unknown)).status_code == 404


@pytest.mark.parametrize(
    "bomb",
    [
        pytest.param(bilevel_png(7000, 7000), id="49-megapixels-in-6-KiB"),  # over our limit, decodable
        pytest.param(png_claiming(100_000, 100_000), id="10-gigapixels-claimed"),  # past Pillow's own fence
    ],
)
async def test_a_decompression_bomb_is_refused_before_it_is_decoded(app: FastAPI, world: World, bomb: bytes) -> None:
    assert len(bomb) < CEILING
    refused = await upload(world, "alice", world.conversations["alice"], "bomb.png", bomb, "image/png")
    assert refused.status_code == 413, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["code"] == "payload_too_large" and problem["max_pixels"] == 40_000_000
    async with app.state.services.store.read() as s:
        assert (await s.conn.execute(select(func.count()).select_from(schema.attachments))).scalar_one() == 0
    blobs = app.state.services.attachments.blobs
    if blobs.kind == "disk":
        assert not blobs.folder.exists() or not any(blobs.folder.iterdir())  # nothing kept


async def test_an_image_that_cannot_be_decoded_is_refused(app: FastAPI, world: World) -> None:
    damaged = png(64, 64)[:60]  # the signature and header, then cut off
    refused = await upload(world, "alice", world.conversations["alice"], "photo.png", damaged, "image/png")
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error"


async def test_thumbnails_are_kept_where_the_files_are(app: FastAPI, world: World, database_url: str) -> None:
    attachment = await sent_attachment(world, "alice", "photo.png", png(640, 640), "image/png")
    served = (await world.call("alice", "GET", f"/api/v1/attachments/{attachment}/thumbnail")).content
    if database_url.startswith("sqlite"):
        folder = Path(database_url.removeprefix("sqlite:///") + "-attachments")
        assert (folder / f"{attachment}_thumb").read_bytes() == served
    else:
        async with app.state.services.store.read() as s:
            assert await s.attachment_thumbnail(attachment) == served
