"""Access tokens: remembered once verified, never past their expiry, never for a different string."""

from __future__ import annotations

import time

import pytest

from helpline.domain.security import TICKET_AUDIENCE, Tokens
from helpline.errors import NotAuthenticated

SECRET = "x" * 40


def test_a_remembered_token_still_expires() -> None:
    tokens = Tokens(SECRET)
    token = tokens.issue("usr_1", "staff", seconds=1)
    assert tokens.verify(token).subject == "usr_1"
    assert tokens.verify(token).subject == "usr_1"  # remembered
    time.sleep(1.2)
    with pytest.raises(NotAuthenticated, match="expired"):
        tokens.verify(token)


def test_remembering_a_token_does_not_vouch_for_a_tampered_copy_or_another_audience() -> None:
    tokens = Tokens(SECRET)
    token = tokens.issue("usr_1", "staff", seconds=60)
    tokens.verify(token)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(NotAuthenticated):
        tokens.verify(tampered)
    with pytest.raises(NotAuthenticated):
        tokens.verify(token, audience=TICKET_AUDIENCE)
    with pytest.raises(NotAuthenticated):
        Tokens("y" * 40).verify(token)  # another server's key
