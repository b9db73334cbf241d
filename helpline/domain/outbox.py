"""Email that must not be lost or sent twice: offline replies and transcripts (issue 12).

Whatever triggers an email writes its row into ``email_outbox`` in the same transaction (a rep's reply
and the email of it commit together, or neither does). A worker on every node drains the outbox: it
claims due rows with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends each, and records it as
sent; a failure is retried with exponential backoff, up to ``outbox_max_attempts``. A restart loses
nothing (the rows are in the database) and sends nothing twice (a row is sent once, then marked; the
worker finishes the email in hand before it stops). Only a crash in the moment between the SMTP
server's acceptance and our record could resend, with the same ``Message-ID``, so receivers can tell.

Offline replies: when a rep replies to a customer who gave an email and has had no stream open (on any
node) and said nothing for ``offline_email_after_seconds``, the reply goes out by email with a link back
to the conversation. Several replies before the email leaves make one email. The link carries a resume
token (domain/security.py), made when the email is sent, so the customer continues on any browser,
also one that never saw the chat; without the token the link would open a blank widget there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from helpline.config import Settings
from helpline.domain import permissions as perms
from helpline.domain.notes import STAFF_ONLY_TYPES
from helpline.domain.security import Tokens
from helpline.errors import Conflict, Forbidden, RateLimited
from helpline.events import EventType
from helpline.mail import Mailer, parse_smtp_url
from helpline.records import Conversation, OutboxEmail, Principal, StoredEvent, utcnow
from helpline.store import Store, StoreSession

__all__ = ["Outbox"]

logger = logging.getLogger("helpline.outbox")

LEASE_SECONDS = 120.0  # a claimed row's worker has this long to send it before another may
BATCH = 20
MAX_TRANSCRIPTS = 3  # per conversation: the address is the customer's word, so bound what it can send
MAX_RETRY_SECONDS = 3600.0
RESUME_PARAMETER = "helpline_resume"  # the widget reads it on load (widget.js), then removes it


class Outbox:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        mailer: Mailer | None = None,
        *,
        connected: Callable[[], Iterable[str]] = lambda: (),
        tokens: Tokens | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.tokens = tokens or Tokens(settings.secret_key)  # signs the resume links
        if mailer is None and settings.smtp_url:
            mailer = Mailer(parse_smtp_url(settings.smtp_url), settings.smtp_from)
        self.mailer = mailer
        self.connected = connected  # the principals with a stream open on this node
        self._wake = asyncio.Event()
        self._last_touch = 0.0

    @property
    def sends_email(self) -> bool:
        return self.mailer is not None

    def wake(self) -> None:
        self._wake.set()

    # -- what writes to the outbox -------------------------------------------------------------------
    async def offline_reply(
        self, s: StoreSession, conversation: Conversation, author: Principal, stored: StoredEvent
    ) -> bool:
        """Inside the reply's transaction: queue it by email if its customer is away and gave an address."""
        if self.mailer is None:
            return False
        customer = await s.customer(id=conversation.customer_id)
        if customer is None:
            return False
        recipient = customer.email
        if not recipient and conversation.pre_chat:
            deployment = await s.deployment(id=conversation.deployment_id)
            recipient = _pre_chat_email(conversation, deployment.pre_chat_fields if deployment else ())
        if not recipient or customer.id in set(self.connected()):
            return False
        now = utcnow()
        seen = [_aware(m) for m in (customer.last_stream_at, conversation.last_customer_at) if m is not None]
        if seen and (now - max(seen)).total_seconds() < self.settings.offline_email_after_seconds:
            return False
        data = stored.data()
        section = _message_text(author.display_name, data)
        if await s.extend_pending_email(conversation.id, "reply", recipient, section, now):
            return True
        await s.enqueue_email(
            kind="reply",
            conversation_id=conversation.id,
            recipient=recipient,
            subject=f"{author.display_name} replied to your chat",
            body=section,
            now=now,
        )
        return True

    async def set_contact(self, principal: Principal, email: str) -> dict[str, Any]:
        """A customer leaves an address for replies while away (the widget's "leave a message")."""
        if not principal.is_customer:
            raise Forbidden("only customers leave a contact address")
        if self.mailer is None:
            raise Conflict("this server does not send email")
        async with self.store.write() as s:
            await s.update_customer(principal.id, email=email)
        return {"customer_id": principal.id, "email": email}

    async def request_transcript(self, principal: Principal, conversation_id: str, recipient: str) -> None:
        """The customer asks for the conversation's transcript by email (202: it is in the outbox)."""
        if not principal.is_customer:
            raise Forbidden("only the conversation's customer asks for its transcript")
        if self.mailer is None:
            raise Conflict("this server does not send email")
        async with self.store.write() as s:
            conversation = perms.require_visible(principal, await s.conversation(conversation_id))
            if await s.count_emails(conversation.id, "transcript") >= MAX_TRANSCRIPTS:
                raise RateLimited("this conversation's transcript was sent often enough", retry_after=3600)
            events = await s.conversation_events(
                conversation.id, after=None, before=None, limit=5000, exclude_types=STAFF_ONLY_TYPES
            )
            lines = [
                _message_text(e.data().get("author", {}).get("display_name", ""), e.data())
                for e in events
                if e.type == EventType.CONVERSATION_MESSAGE
            ]
            body = "Your chat with us:\n\n" + ("".join(lines) or "(no messages)\n")
            await s.enqueue_email(
                kind="transcript",
                conversation_id=conversation.id,
                recipient=recipient,
                subject="The transcript of your chat",
                body=body,
                now=utcnow(),
            )
        self.wake()

    # -- the worker ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Drain the outbox until cancelled; the email in hand is finished first."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.outbox_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.touch_customers()
                while await self.drain():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database restarting must not stop the outbox for good
                logger.exception("outbox pass failed")
                await asyncio.sleep(1)

    async def touch_customers(self, force: bool = False) -> None:
        """Record which customers have a stream open here, so other nodes know they are not away."""
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._last_touch < self.settings.customer_touch_seconds:
            return
        self._last_touch = loop.time()
        customers = [p for p in self.connected() if p.startswith("cus_")]
        for start in range(0, len(customers), 500):
            async with self.store.side_write() as s:
                await s.touch_customers(customers[start : start + 500], utcnow())

    async def drain(self) -> int:
        """Claim due emails and send them; returns how many were claimed (0: nothing is due)."""
        if self.mailer is None:
            return 0
        now = utcnow()
        async with self.store.read() as s:
            if not await s.email_due(now):
                return 0
        async with self.store.side_write() as s:
            claimed = await s.claim_emails(now, now + timedelta(seconds=LEASE_SECONDS), BATCH)
        for email in claimed:
            # Shielded: a stop while an email is on the wire waits until it is sent and recorded.
            task = asyncio.ensure_future(self._deliver(email))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await task
                raise
        return len(claimed)

    async def _deliver(self, email: OutboxEmail) -> None:
        assert self.mailer is not None
        try:
            body = await self._render(email)
            await self.mailer.send(self.mailer.message(email.recipient, email.subject, body, f"outbox-{email.id}"))
        except Exception as exc:  # SMTP refused, unreachable, timed out: retry later
            retry_at = None
            if email.attempts < self.settings.outbox_max_attempts:
                delay = min(MAX_RETRY_SECONDS, self.settings.outbox_retry_seconds * 2 ** (email.attempts - 1))
                retry_at = utcnow() + timedelta(seconds=delay * random.uniform(0.8, 1.2))  # noqa: S311
            logger.warning("email %s failed (attempt %s): %s", email.id, email.attempts, type(exc).__name__)
            async with self.store.side_write() as s:
                await s.email_failed(email.id, f"{type(exc).__name__}: {exc}", retry_at)
            return
        async with self.store.side_write() as s:
            await s.email_sent(email.id, utcnow())

    async def _render(self, email: OutboxEmail) -> str:
        if email.kind != "reply":
            return email.body
        link = await self._link(email.conversation_id)
        return (
            "Hello,\n\nyou have a reply in your chat with us:\n\n"
            f"{email.body}\nContinue the conversation: {link}\n\n"
            "You get this email because you left this address in the chat.\n"
        )

    async def _link(self, conversation_id: str | None) -> str:
        """The site (the deployment's first allowed origin), with a resume token for the conversation."""
        base = self.settings.public_url
        async with self.store.read() as s:
            conversation = await s.conversation(conversation_id) if conversation_id else None
            deployment = await s.deployment(id=conversation.deployment_id) if conversation else None
        if deployment is not None and deployment.allowed_origins:
            base = deployment.allowed_origins[0]
        if conversation is None:
            return f"{base.rstrip('/')}/#helpline-chat"
        token = self.tokens.issue_resume(conversation.customer_id, conversation.id, self.settings.resume_link_seconds)
        return f"{base.rstrip('/')}/?{urlencode({RESUME_PARAMETER: token})}#helpline-chat"


def _message_text(author: str, data: dict[str, Any]) -> str:
    lines = [f"{author or 'Someone'}:"]
    if data.get("text"):
        lines.extend(f"  {line}" for line in str(data["text"]).splitlines())
    lines.extend(f"  [attachment: {a.get('name', 'file')}]" for a in data.get("attachments") or [])
    return "\n".join(lines) + "\n\n"


def _pre_chat_email(conversation: Conversation, fields: Iterable[dict[str, Any]]) -> str | None:
    """An address the customer gave in the pre-chat form: a field of type email, or one named so."""
    names = [f.get("name") for f in fields if f.get("type") == "email"] + ["email"]
    for name in names:
        value = (conversation.pre_chat or {}).get(str(name))
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
