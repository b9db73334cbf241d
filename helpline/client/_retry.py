"""Retrying: the backoff schedule, and whether a failed call is worth another attempt.

`Backoff` paces both the event stream's reconnections and the retries of idempotent calls;
`retry_delay` decides the latter.
"""

from __future__ import annotations

import random

from helpline.client._errors import HelplineError, HTTPStatusError, TransportError

# A sent message is retried only when the server said it stored nothing and asked us to come back.
RETRYABLE = frozenset({503})
MAX_RETRY_AFTER = 30.0  # wait no longer than this inside one call; beyond, the caller should decide


class Backoff:
    """Exponential backoff with "equal jitter": the n-th delay is drawn from [d/2, d], d = initial·2ⁿ.

    The jitter keeps clients that lost the same server from coming back in lockstep. `initial` is
    replaced by the stream's `retry:` value, so the server sets the pace; `maximum` caps the growth
    (but never below what the server asked for).
    """

    def __init__(
        self,
        initial: float = 3.0,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        ceiling = max(self.maximum, self.initial)
        delay = min(ceiling, self.initial * self.multiplier ** min(self.attempt, 64))
        self.attempt += 1
        return self._rng.uniform(delay / 2, delay)

    def planned_delay(self) -> float:
        """After a planned end (`stream.reconnect`): anywhere in [0, initial).

        A server shutting down ends every stream at once; spreading the reconnections over one
        retry interval avoids a stampede, while the usual gap stays short.
        """
        return self._rng.uniform(0.0, self.initial)

    def reset(self) -> None:
        self.attempt = 0


def retry_delay(error: HelplineError, attempt: int, retries: int, backoff: Backoff) -> float | None:
    """How long to wait before retrying an idempotent call after `error`, or None to give up."""
    if attempt >= retries:
        return None
    if isinstance(error, HTTPStatusError):
        if error.status not in RETRYABLE:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER else None
    elif not isinstance(error, TransportError):
        return None
    return backoff.next_delay()
