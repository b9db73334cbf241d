"""Passwords, access tokens, stream tickets and verified-customer identity tokens.

Access tokens are HS256 JWTs signed with ``HELPLINE_SECRET_KEY``. A stream ticket is a JWT too, with
its own audience (so an access token can never pass as a ticket, nor a ticket as an access token),
a ≤ 60 s expiry and a ``jti`` the store records on first use (docs/protocol.md "Credentials").
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from helpline.errors import NotAuthenticated

ACCESS_AUDIENCE = "helpline:access"
TICKET_AUDIENCE = "helpline:stream-ticket"
ALGORITHM = "HS256"


class Passwords:
    """argon2id hashing, run in a worker thread: one hash costs ~0.1-0.2 s of CPU, which on the event
    loop would stall every stream of the node for that long.

    The cost comes from settings (argon2's recommended defaults unless changed). Verifying uses the
    parameters stored in each hash, so raising the cost later keeps old hashes valid.
    """

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Verified against when the username is unknown, so a failed login takes the same time either
        # way and does not reveal which usernames exist.
        self._dummy = self._hasher.hash("helpline-no-such-user")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    kind: Literal["staff", "customer"]
    jti: str
    expires_at: datetime


VERIFIED_CACHE_SIZE = 20_000


class Tokens:
    def __init__(self, secret_key: str) -> None:
        self._key = secret_key
        # A token's signature and claims never change, so one that verified once is remembered (until
        # it expires) instead of being decoded and HMAC-checked on every request: ~150 µs of a
        # message's CPU in bench/. Keyed by the exact token string and audience.
        self._verified: dict[tuple[str, str], TokenClaims] = {}

    def issue(self, subject: str, kind: str, seconds: int, audience: str = ACCESS_AUDIENCE) -> str:
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "sub": subject,
            "kind": kind,
            "aud": audience,
            "iat": now,
            "exp": now + seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, audience: str = ACCESS_AUDIENCE) -> TokenClaims:
        remembered = self._verified.get((token, audience))
        if remembered is not None:
            if remembered.expires_at > datetime.now(UTC):
                return remembered
            del self._verified[(token, audience)]
        claims = self._decode(token, audience)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # bounded memory; the next requests refill it
        self._verified[(token, audience)] = claims
        return claims

    def _decode(self, token: str, audience: str) -> TokenClaims:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=audience,
                options={"require": ["sub", "exp", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("the token has expired") from None
        except jwt.PyJWTError:
            raise NotAuthenticated("the token is invalid") from None
        kind = claims.get("kind")
        if kind not in ("staff", "customer") or not isinstance(claims["sub"], str):
            raise NotAuthenticated("the token is invalid")
        return TokenClaims(
            subject=claims["sub"],
            kind=kind,
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    external_id: str
    display_name: str | None
    email: str | None


def verify_identity_token(token: str, signing_key: str | None, deployment_key: str) -> VerifiedIdentity:
    """Check a JWT the company signed for one of its logged-in customers.

    The company signs with the deployment's key (HS256); ``sub`` is its own stable customer id, and
    ``exp`` is required so a leaked token cannot be replayed forever. An ``aud``, when present, must
    name the deployment.
    """
    if signing_key is None:
        raise NotAuthenticated("this deployment does not accept identity tokens")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("the identity token has expired") from None
    except jwt.PyJWTError:
        raise NotAuthenticated("the identity token is invalid") from None
    audience = claims.get("aud")
    if audience is not None and audience != deployment_key and deployment_key not in (audience or []):
        raise NotAuthenticated("the identity token is for another deployment")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise NotAuthenticated("the identity token has no usable subject")
    name, email = claims.get("name"), claims.get("email")
    return VerifiedIdentity(
        external_id=subject,
        display_name=name[:120] if isinstance(name, str) and name.strip() else None,
        email=email[:254] if isinstance(email, str) and email else None,
    )
