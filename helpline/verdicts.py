"""What is wrong with a network path for live updates: one list of verdicts, one judge.

``helpline doctor URL`` (operator side) and the browser page ``GET /diagnostics`` (the customer's or rep's own
browser, through their own network) measure the same things: the credential-free diagnostics stream
(``/api/v1/diagnostics/stream``) as an ``EventSource`` and as a streaming ``fetch``, a silent stream (with and
without heartbeats) and a held long-poll. Both hand their observations to :func:`judge`, so a verdict means the
same wherever it was found; the page gets the list from ``GET /api/v1/diagnostics/verdicts`` and its verdict
from ``POST /api/v1/diagnostics/verdict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["VERDICTS", "Verdict", "judge"]


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    severity: str  # ok | warn | fail
    title: str
    advice: str

    def public(self) -> dict[str, str]:
        return {"name": self.name, "severity": self.severity, "title": self.title, "advice": self.advice}


# Worst first: judge() names the first that applies.
VERDICTS: tuple[Verdict, ...] = (
    Verdict(
        "unreachable",
        "fail",
        "The chat server cannot be reached from here.",
        "Check the address and your connection; if other sites work, ask IT whether this site is blocked.",
    ),
    Verdict(
        "no_transport",
        "fail",
        "Neither live updates nor the slower polling mode get through this network.",
        "Chat cannot work from here. Ask IT to allow this site, and send them the report below.",
    ),
    Verdict(
        "stream_blocked",
        "warn",
        "Something on your network blocks streamed responses; chat works in slower polling mode.",
        "Ask IT to allow text/event-stream responses from this site (exclude it from TLS inspection and "
        "web filtering).",
    ),
    Verdict(
        "stream_buffered",
        "warn",
        "Something on your network holds streamed responses back; chat works in slower polling mode.",
        "Ask IT to exclude this site from TLS inspection and response buffering (proxies, antivirus web shields).",
    ),
    Verdict(
        "idle_cut",
        "warn",
        "Your network cuts connections that stay quiet for a while; chat reconnects by itself, "
        "and heartbeats keep it open.",
        "If messages arrive late, ask IT to raise the idle timeout for this site above 30 seconds.",
    ),
    Verdict(
        "stream_compressed",
        "warn",
        "Something on your network compresses the live stream; updates still arrive, but may be delayed.",
        "Ask IT (or the server's operator) to turn off compression for text/event-stream on the proxy.",
    ),
    Verdict("ok", "ok", "Live updates work on this network.", "Nothing to do."),
)
BY_NAME = {v.name: v for v in VERDICTS}


def _buffered(probes: list[dict[str, Any]]) -> bool | None:
    """Timed probes that arrived within half the time they were sent over: something held them."""
    timed = sorted((p for p in probes if p.get("phase") in ("open", "timed")), key=lambda p: p["n"])
    if len(timed) < 2:
        return None
    sent_span = float(timed[-1]["sent"]) - float(timed[0]["sent"])
    received_span = float(timed[-1]["received"]) - float(timed[0]["received"])
    return received_span < sent_span * 0.5


def judge(observation: dict[str, Any]) -> Verdict:
    """The verdict for what a client observed (the shape is described in docs/deployment.md)."""
    if not observation.get("reachable", False):
        return BY_NAME["unreachable"]
    streams = [observation.get(k) or {} for k in ("eventsource", "fetch")]
    measured = [s for s in streams if s]
    poll = observation.get("poll") or {}
    poll_ok = bool(poll.get("ok")) if poll else True
    delivered = [s for s in measured if len(s.get("probes", [])) >= 2]
    if measured and not delivered:
        return BY_NAME["stream_blocked"] if poll_ok else BY_NAME["no_transport"]
    if any(_buffered(s.get("probes", [])) for s in delivered):
        return BY_NAME["stream_buffered"] if poll_ok else BY_NAME["no_transport"]
    idle = observation.get("idle") or {}
    if idle and not idle.get("survived", True):
        return BY_NAME["idle_cut"]
    if any(s.get("content_encoding") for s in measured):
        return BY_NAME["stream_compressed"]
    return BY_NAME["ok"]
