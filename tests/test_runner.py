"""Secrets never reach the access log."""

from __future__ import annotations

import logging

from helpline.runner import RedactSecrets


def test_stream_tickets_and_tokens_in_urls_are_redacted_from_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/events?ticket=eyJhbGc.secret.sig&last_event_id=4", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    line = record.getMessage()
    assert "eyJhbGc" not in line and "ticket=[redacted]" in line and "last_event_id=4" in line
