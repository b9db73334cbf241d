"""Sending one email over SMTP, configured by ``HELPLINE_SMTP_URL`` (issue 12).

``smtp://[user:password@]host[:port][?starttls=1]`` (port 25 by default, STARTTLS when asked), or
``smtps://…`` for TLS from the first byte (port 465). The standard library's client runs in a thread;
the outbox worker (domain/outbox.py) sends one message at a time, so one thread is all it takes.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from helpline.config import ConfigurationError

__all__ = ["Mailer", "SmtpSettings", "parse_smtp_url"]

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    tls: bool  # TLS from the start (smtps://)
    starttls: bool
    username: str | None
    password: str | None

    def redacted(self) -> str:
        who = f"{self.username}:***@" if self.username else ""
        return f"{'smtps' if self.tls else 'smtp'}://{who}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError("HELPLINE_SMTP_URL is malformed") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("HELPLINE_SMTP_URL must look like smtp://host:port or smtps://host:port")
    options = parse_qs(parts.query)
    starttls = options.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes", "on")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if parts.scheme == "smtps" else 25),
        tls=parts.scheme == "smtps",
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class Mailer:
    def __init__(self, smtp: SmtpSettings, sender: str) -> None:
        self.smtp = smtp
        self.sender = sender

    def message(self, recipient: str, subject: str, body: str, message_key: str) -> EmailMessage:
        """One plain-text message; its Message-ID is derived from the outbox row, so that a resend after a
        crash between the server's acceptance and our record of it carries the same id (receivers dedupe)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        domain = self.sender.rsplit("@", 1)[-1].strip(" >") or "helpline.invalid"
        message["Message-ID"] = f"<{message_key}@{domain}>" if message_key else make_msgid()
        message.set_content(body)
        return message

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        smtp = self.smtp
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if smtp.tls:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS)
        with client:
            if smtp.starttls:
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
