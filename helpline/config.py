"""Settings, read from keyword arguments or ``HELPLINE_<OPTION>`` environment variables.

One frozen object is built at start-up and handed to the app factory; nothing reads the environment
after that, so tests can build as many differently configured apps as they like in one process.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///helpline.db"
DEFAULT_BUS_URL = "memory://"
MIN_SECRET_KEY_BYTES = 32


class ConfigurationError(Exception):
    """A setting is missing or malformed; the server refuses to start rather than run insecurely."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    bus_url: str = DEFAULT_BUS_URL
    secret_key: str = ""
    demo: bool = False
    demo_password: str = ""
    public_url: str = ""
    access_token_seconds: int = 8 * 3600
    customer_token_seconds: int = 24 * 3600
    # A guest's session outlives its access token: a customer token issued within this many days renews
    # (docs/protocol.md "Renewing a customer session"), and each renewal starts the period again.
    customer_session_days: float = 30.0
    stream_ticket_seconds: int = 60
    # The link in an offline-reply email carries a resume token valid this long (docs/protocol.md
    # "Resume links"): the customer continues the conversation from any browser until then.
    resume_link_seconds: int = 7 * 86400
    # Stream behaviour (docs/protocol.md "Events", 1.1 "Streams"). Every idle stream gets a heartbeat after
    # `heartbeat_seconds` without a write: a `stream.heartbeat` event (EventSource hides comments, so a
    # page can only see a silent stall through an event) with a comment in the same write. 5 s, not the
    # 15 s of version 1: firewalls and NATs that silently drop flows idle for 10 s exist (mobile carriers,
    # some corporate gear), and only a byte every < 10 s keeps such a flow alive; bench/RESULTS.md
    # measures what it costs at 20,000 idle streams. A client that still stalls asks for a shorter one
    # on reconnect (`?heartbeat=S`), down to `heartbeat_min_seconds`, never above `heartbeat_seconds`.
    heartbeat_seconds: float = 5.0
    heartbeat_min_seconds: float = 2.0
    heartbeat_events: bool = True
    stream_lifetime_seconds: float = 600.0
    stream_padding_bytes: int = 2048
    retry_milliseconds: int = 3000
    stream_queue_size: int = 1000
    stream_write_timeout_seconds: float = 10.0
    max_streams_per_identity: int = 5
    max_streams_total: int = 20000
    replay_limit: int = 5000
    # A long-poll holds at most this long (docs/protocol.md 1.1: 20 s by default, `timeout` <= 30), so a
    # 25-30 s idle cut on the way never strands one; clients read with a timeout of hold + 5 s.
    poll_max_timeout_seconds: float = 20.0
    # Delivery (domain/delivery.py): how often a node looks at the head of the log for events whose
    # bus message never came (a writer died between commit and publish, a publish failed, the bus is
    # down). One indexed read; the most such an event is late.
    log_check_seconds: float = 1.0
    # Test hook only (domain/faults.py): "die-after-commit:<marker>" or "publish-fails:<marker>".
    fault_injection: str = ""
    # Routing (issue 4).
    router_enabled: bool = True  # tests turn the background loop off and drive Router.tick() themselves
    router_tick_seconds: float = 1.0
    offer_timeout_seconds: float = 30.0
    refusal_cooldown_seconds: float = 120.0
    presence_grace_seconds: float = 60.0
    presence_touch_seconds: float = 10.0
    inactivity_warning_seconds: float = 600.0
    inactivity_close_seconds: float = 300.0
    # Retention (issue 15): how often the background job looks for conversations past their deployment's
    # retention_days, and how many it removes per write transaction (a bound on how long writers wait).
    retention_interval_seconds: float = 3600.0
    retention_batch_size: int = 100
    # argon2id cost for staff passwords (argon2's recommended defaults).
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    # Webhooks (issue 14): a request's timeout, how many requests one endpoint has in flight per node,
    # the backoff between attempts (exponential with jitter, capped), how long an event is retried
    # before it is given up, how many failures in a row pause an endpoint, and how long a node's claim
    # on a delivery lasts (a node that dies mid-delivery loses its claim after this). Tests shrink them.
    webhooks_enabled: bool = True  # the delivery worker; off in tests that drive DeliveryWorker.pump() themselves
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 4
    webhook_backoff_seconds: float = 5.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_retry_hours: float = 24.0
    webhook_pause_after_failures: int = 20
    webhook_lease_seconds: float = 60.0
    webhook_poll_seconds: float = 1.0
    webhook_allow_private: bool = False  # HELPLINE_WEBHOOK_ALLOW_PRIVATE=1: loopback and private targets allowed
    # Service agents (issue 14): what a customer writes to ask for a person (case-insensitive, comma-separated).
    handoff_phrases: str = "talk to a person,speak to a person,human agent,real person"
    # A customer whose last message a bot leaves unanswered this long is handed to people (0: never).
    bot_silence_seconds: float = 120.0
    # Request hygiene. Below the app (edge/server.py): request heads, their deadline, connections.
    max_request_head_bytes: int = 16 * 1024
    max_request_headers: int = 100
    request_head_seconds: float = 10.0
    max_connections: int = 25_000  # per node; never more than the process's descriptor limit allows
    max_connections_per_address: int = 256  # trusted proxies are exempt
    keepalive_seconds: float = 5.0
    # One line per request on stderr (uvicorn's access log, written from a thread). Off, a stored message
    # costs ~10 % less CPU (bench/RESULTS.md): for a node whose proxy in front keeps the access log.
    access_log: bool = True
    # Reverse proxies whose X-Forwarded-For / Forwarded header is believed: addresses or CIDR blocks,
    # comma-separated (edge/clients.py). Empty: the TCP peer is the client.
    trusted_proxies: str = ""
    max_body_bytes: int = 64 * 1024
    max_message_chars: int = 10_000
    # Who a token names is cached per node; an invalidation through the bus drops it on every node at once
    # (domain/invalidation.py), so this only bounds how long a missed one could last.
    principal_cache_seconds: float = 5.0
    rate_limit_per_minute: int = 600
    login_attempts_per_minute: int = 10
    # Attachments (issue 12): the server-wide ceiling and default per file; a deployment may set a lower
    # limit and a narrower list of types. Types are checked by content (domain/filetypes.py).
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_types: str = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"
    # Where files go: "database" (PostgreSQL's default: every node serves them) or "disk" (SQLite's
    # default: a folder beside the database file, ``<database>-attachments``, or ``attachment_dir``).
    attachment_storage: str = ""
    # Images get a thumbnail on upload (domain/thumbnails.py); one with more pixels than this is refused
    # (413) before it is decoded: a small file may expand to gigabytes (a decompression bomb).
    attachment_max_pixels: int = 40_000_000
    attachment_dir: str = ""
    # Email (offline replies, transcripts): smtp://[user:pass@]host[:port][?starttls=1], smtps:// for TLS.
    smtp_url: str = ""
    smtp_from: str = "Helpline <helpline@localhost>"
    offline_email_after_seconds: float = 300.0  # a reply is emailed to a customer without a stream this long
    outbox_enabled: bool = True  # the background worker that sends the outbox
    outbox_poll_seconds: float = 5.0
    outbox_retry_seconds: float = 30.0  # first retry after a failed send; doubles up to an hour
    outbox_max_attempts: int = 12
    customer_touch_seconds: float = 60.0  # how often a node records which customers have a stream open
    rating_window_days: int = 30  # the satisfaction average in queue stats and /metrics covers this long
    service_level_seconds: float = 60.0  # the wallboard's service level: share answered within this long

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``HELPLINE_*`` variables; explicit overrides (CLI flags) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"HELPLINE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _coerce(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def checked(self) -> Settings:
        """Fill what demo mode may generate, and refuse what production must not run without."""
        result = self
        if not result.secret_key:
            if not result.demo:
                raise ConfigurationError(
                    "HELPLINE_SECRET_KEY is required (at least 32 bytes) unless --demo is given; generate one "
                    "with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            result = replace(result, secret_key=secrets.token_urlsafe(48))
        elif len(result.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            # A short HS256 key is guessable offline from any one token (a 3-character key forged a working
            # admin token, issue 13): refused with --demo too, since a demo may face a network.
            raise ConfigurationError(
                f"HELPLINE_SECRET_KEY is {len(result.secret_key.encode())} bytes; it must be at least "
                f"{MIN_SECRET_KEY_BYTES} bytes (generate one with: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if result.demo and not result.demo_password:
            result = replace(result, demo_password=secrets.token_urlsafe(12))
        return result


def _coerce(name: str, raw: str, kind: Any) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind_name == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind_name == "int":
            return int(raw)
        if kind_name == "float":
            return float(raw)
    except ValueError:
        raise ConfigurationError(f"HELPLINE_{name.upper()} has an invalid value") from None
    return raw
