"""``helpline doctor URL``: what, on the network path to a server, breaks Server-Sent Events.

Each check reports ``ok``, ``warn`` or ``fail`` with advice. The stream checks read the server's
credential-free diagnostics stream (``/api/v1/diagnostics/stream``) and compare when probes were sent
(server clock) with when they arrived: a stream that arrives in one burst is being buffered (a proxy,
or a TLS-inspecting gateway or antivirus that scans whole responses); a stream cut during a silent
period sits behind an idle timeout shorter than that period.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from helpline.events import EventType
from helpline.sse import SSEDecoder
from helpline.verdicts import Verdict, judge

Status = Literal["ok", "warn", "fail"]
INSPECTION_VENDORS = (
    "zscaler",
    "fortinet",
    "fortigate",
    "sophos",
    "kaspersky",
    "avast",
    "avg",
    "eset",
    "bitdefender",
    "blue coat",
    "bluecoat",
    "symantec web",
    "palo alto",
    "netskope",
    "forcepoint",
    "mcafee web",
    "checkpoint",
    "check point",
    "barracuda",
    "cisco umbrella",
    "websense",
    "trend micro",
    "norton",
)


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StreamObservation:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_after: float | None = None
    arrivals: list[tuple[int, str, float, float]] = field(default_factory=list)  # n, phase, sent, received
    cut_after: float | None = None
    error: str = ""


def observe_stream(base: str, *, count: int, interval: float, quiet: float, timeout: float) -> StreamObservation:
    seen = StreamObservation()
    started = time.time()
    url = f"{base}/api/v1/diagnostics/stream?count={count}&interval={interval}&quiet={quiet}"
    decoder = SSEDecoder()
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10.0, read=timeout)) as client,
            client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response,
        ):
            seen.status = response.status_code
            seen.headers = {k.lower(): v for k, v in response.headers.items()}
            for chunk in response.iter_bytes():  # decoded: a proxy may have compressed it
                now = time.time()
                if seen.first_byte_after is None:
                    seen.first_byte_after = now - started
                for event in decoder.feed(chunk):
                    if event.event == EventType.DIAGNOSTICS_PROBE:
                        body = event.json()
                        seen.arrivals.append((int(body["n"]), str(body["phase"]), float(body["server_time"]), now))
    except httpx.HTTPError as exc:
        seen.error = f"{type(exc).__name__}: {exc}"
        seen.cut_after = time.time() - started
    return seen


def check_reachable(base: str) -> Check:
    try:
        started = time.monotonic()
        response = httpx.get(f"{base}/healthz", timeout=10)
        elapsed = time.monotonic() - started
    except httpx.HTTPError as exc:
        return Check(
            "reachable",
            "fail",
            f"cannot reach {base}: {type(exc).__name__}: {exc}",
            "check the URL, DNS, and that a firewall allows the connection",
        )
    if response.status_code != 200:
        return Check(
            "reachable",
            "fail",
            f"/healthz answered {response.status_code}",
            "the URL may not point at a Helpline server, or a proxy in between refuses it",
        )
    return Check("reachable", "ok", f"/healthz answered in {elapsed * 1000:.0f} ms", data={"seconds": elapsed})


def check_tls(base: str) -> Check:
    parts = urlsplit(base)
    if parts.scheme != "https":
        return Check(
            "tls",
            "warn",
            "plain HTTP: intermediaries can read and buffer the stream freely",
            "serve Helpline over HTTPS; TLS keeps most transparent proxies out of the stream",
        )
    host, port = parts.hostname or "", parts.port or 443
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ssl.create_default_context().wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "tls",
            "fail",
            f"the certificate is not trusted: {exc.verify_message}",
            "a TLS-inspecting gateway or antivirus may be re-signing traffic with its own CA",
        )
    except OSError as exc:
        return Check("tls", "fail", f"TLS handshake failed: {exc}")
    issuer_parts: Any = cert.get("issuer", ())  # ((("organizationName", "…"),), …)
    issuer = " ".join(str(attribute[1]) for rdn in issuer_parts for attribute in rdn)
    vendor = next((v for v in INSPECTION_VENDORS if v in issuer.lower()), None)
    if vendor:
        return Check(
            "tls",
            "warn",
            f"certificate issued by {issuer!r}: TLS inspection by {vendor} is likely",
            "inspection engines buffer streams; ask IT to exempt this host from HTTPS scanning",
            {"issuer": issuer},
        )
    return Check("tls", "ok", f"certificate issued by {issuer!r}", data={"issuer": issuer})


def check_headers(seen: StreamObservation) -> Check:
    if seen.status != 200:
        return Check(
            "headers",
            "fail",
            f"the diagnostics stream answered {seen.status or 'nothing'} {seen.error}",
            "a proxy may block text/event-stream responses",
        )
    problems = []
    if "content-encoding" in seen.headers:
        problems.append(f"something compresses the stream (Content-Encoding: {seen.headers['content-encoding']})")
    if "no-transform" not in seen.headers.get("cache-control", ""):
        problems.append("Cache-Control was rewritten (no-transform is gone)")
    if "x-helpline-diagnostics" not in seen.headers:
        problems.append("response headers were rewritten or stripped on the way")
    via = seen.headers.get("via")
    if problems:
        return Check(
            "headers",
            "warn",
            "; ".join(problems),
            "disable compression and response rewriting for /api/v1/events on the proxy",
            {"via": via},
        )
    return Check(
        "headers",
        "ok",
        "stream headers arrive intact" + (f" (through a proxy: Via {via})" if via else ""),
        data={"via": via},
    )


def check_delivery(seen: StreamObservation, interval: float) -> Check:
    timed = [a for a in seen.arrivals if a[1] in ("open", "timed")]
    if len(timed) < 2:
        return Check(
            "buffering",
            "fail",
            f"only {len(timed)} probe(s) arrived ({seen.error or 'stream ended'})",
            "something holds or blocks the stream: see the deployment guide for proxy settings",
        )
    sent_span = timed[-1][2] - timed[0][2]
    received_span = timed[-1][3] - timed[0][3]
    lags = [received - sent for _n, _p, sent, received in timed]
    first_lag = lags[0] - min(lags)
    data = {"sent_span": sent_span, "received_span": received_span, "first_probe_delay": first_lag}
    if received_span < sent_span * 0.5:
        return Check(
            "buffering",
            "fail",
            f"probes sent over {sent_span:.1f} s arrived within {received_span:.1f} s: the stream is buffered",
            "turn off response buffering for /api/v1/events (nginx: honour X-Accel-Buffering or "
            "proxy_buffering off) or exempt the host from TLS/antivirus scanning; clients fall back "
            "to long-polling meanwhile",
            data,
        )
    if first_lag > max(1.0, interval):
        return Check(
            "buffering",
            "warn",
            f"the first probe was held {first_lag:.1f} s longer than later ones",
            "an intermediary holds the start of responses; initial padding may be too small for it",
            data,
        )
    return Check("buffering", "ok", f"probes arrived as they were sent (spread {received_span:.1f} s)", data=data)


def check_idle(seen: StreamObservation, quiet: float) -> Check:
    if any(a[1] == "after_quiet" for a in seen.arrivals):
        return Check("idle_timeout", "ok", f"a stream silent for {quiet:.0f} s stayed open")
    return Check(
        "idle_timeout",
        "fail",
        f"the connection was cut during {quiet:.0f} s of silence ({seen.error or 'closed early'})",
        "an idle timeout sits on the path: set HELPLINE_HEARTBEAT_SECONDS below it (default 15 s), "
        "or raise the proxy's timeout for /api/v1/events",
        {"cut_after": seen.cut_after},
    )


def diagnose(url: str, *, idle_seconds: float = 0.0, interval: float = 1.0, count: int = 4) -> list[Check]:
    return examine(url, idle_seconds=idle_seconds, interval=interval, count=count)[0]


def examine(
    url: str, *, idle_seconds: float = 0.0, interval: float = 1.0, count: int = 4
) -> tuple[list[Check], Verdict]:
    """The checks, and the verdict of :func:`helpline.verdicts.judge` (the one the browser page gets too)."""
    base = url.rstrip("/")
    checks = [check_reachable(base)]
    observation: dict[str, Any] = {"reachable": checks[0].status != "fail"}
    if checks[0].status == "fail":
        return checks, judge(observation)
    checks.append(check_tls(base))
    seen = observe_stream(base, count=count, interval=interval, quiet=0, timeout=interval * count + 20)
    checks.append(check_headers(seen))
    checks.append(check_delivery(seen, interval))
    observation["fetch"] = _as_observed(seen)
    if idle_seconds > 0:
        quiet_seen = observe_stream(base, count=1, interval=0.1, quiet=idle_seconds, timeout=idle_seconds + 20)
        checks.append(check_idle(quiet_seen, idle_seconds))
        observation["idle"] = {
            "quiet_seconds": idle_seconds,
            "survived": any(a[1] == "after_quiet" for a in quiet_seen.arrivals),
        }
    observation["poll"] = _poll(base)
    return checks, judge(observation)


def _as_observed(seen: StreamObservation) -> dict[str, Any]:
    return {
        "status": seen.status,
        "content_encoding": seen.headers.get("content-encoding"),
        "diagnostics_header": "x-helpline-diagnostics" in seen.headers,
        "probes": [{"n": n, "phase": phase, "sent": sent, "received": got} for n, phase, sent, got in seen.arrivals],
    }


def _poll(base: str, hold: float = 1.0) -> dict[str, Any]:
    started = time.time()
    try:
        response = httpx.get(f"{base}/api/v1/diagnostics/poll", params={"hold": hold}, timeout=hold + 15)
    except httpx.HTTPError as exc:
        return {"ok": False, "status": 0, "error": str(exc)}
    took = time.time() - started
    return {"ok": response.status_code == 200, "status": response.status_code, "took": took, "hold_seconds": hold}


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
