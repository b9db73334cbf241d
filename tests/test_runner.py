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


def test_the_access_log_is_written_off_the_loop_exactly_as_uvicorn_formats_it() -> None:
    import io

    from uvicorn.logging import AccessFormatter

    from helpline.runner import log_off_the_loop

    logger = logging.getLogger("helpline.test.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger.handlers = [handler]
    logger.addFilter(RedactSecrets())
    listener = log_off_the_loop(logger)
    assert listener is not None and handler not in logger.handlers
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/v1/events?ticket=abc.def", "1.1", 200)
    listener.stop()  # writes out what is queued
    assert written.getvalue() == '127.0.0.1:5000 - "GET /api/v1/events?ticket=[redacted] HTTP/1.1" 200 OK\n'


def test_a_server_process_freezes_its_startup_heap_out_of_full_collections(sqlite_url: str) -> None:
    """``helpline serve`` freezes what exists after startup: a full collection over it paused the loop ~60 ms."""
    import gc
    import threading
    import time

    from helpline import create_app
    from helpline.runner import build_server
    from tests.conftest import free_port, make_settings

    gc.unfreeze()
    server = build_server(
        create_app(make_settings(sqlite_url)), "127.0.0.1", free_port(), freeze_startup_heap=True, log_level="warning"
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15  # the freeze follows the moment the server reports it started
        while gc.get_freeze_count() == 0 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        assert gc.get_freeze_count() > 50_000  # the app, its routes and validators, the store's tables
    finally:
        server.stop_gracefully()
        thread.join(timeout=15)
        gc.unfreeze()  # leave the test process as it was
