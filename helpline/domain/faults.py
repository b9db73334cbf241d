"""Fault injection for the delivery tests (issue 13): off unless ``HELPLINE_FAULT_INJECTION`` is set.

``die-after-commit:<marker>``
    the process kills itself (SIGKILL) right after the COMMIT of a batch holding an event whose JSON
    contains ``<marker>``, before that batch is published: the node that "died between commit and
    publish" of the issue. Its callers get no answer; the events are in the log.
``publish-fails:<marker>``
    publishing such a batch fails as if the bus were unreachable after its retries.

Both act between the commit and the publish, which is where a real failure loses a wake-up. They exist
to prove that the log, not the bus, is what delivery rests on; production never sets them.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence

from helpline.config import ConfigurationError
from helpline.errors import Unavailable
from helpline.records import StoredEvent
from helpline.store.commit import Publisher

logger = logging.getLogger("helpline.faults")
KINDS = ("die-after-commit", "publish-fails")


def injected(spec: str, publish: Publisher) -> Publisher:
    """``publish`` with the fault ``spec`` describes, or ``publish`` itself when ``spec`` is empty."""
    if not spec:
        return publish
    kind, _, marker = spec.partition(":")
    if kind not in KINDS or not marker:
        raise ConfigurationError(f"HELPLINE_FAULT_INJECTION must be one of {', '.join(KINDS)} followed by :<marker>")
    logger.warning("fault injection is on: %s on events containing %r", kind, marker)

    async def faulty(events: Sequence[StoredEvent]) -> None:
        if any(marker in event.payload for event in events):
            if kind == "die-after-commit":
                logger.warning("fault injection: dying between commit and publish")
                os.kill(os.getpid(), signal.SIGKILL)
            raise Unavailable("fault injection: the event bus is unavailable", retry_after=2)
        await publish(events)

    return faulty
