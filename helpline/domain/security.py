"""Passwords, access tokens, stream tickets, resume links and verified-customer identity tokens.

Access tokens are HS256 JWTs signed with ``HELPLINE_SECRET_KEY``. A stream ticket is a JWT too, with
its own audience (so an access token can never pass as a ticket, nor a ticket as an access token),
a ≤ 60 s expiry and a ``jti`` the store records on first use (docs/protocol.md "Credentials"). A resume
token, the credential in the link of an offline-reply email, is one more audience: it names a customer
and one of its conversations, expires (``resume_link_seconds``), and is only ever exchanged for a
customer session (``POST /api/v1/sessions/resume``), never accepted as a bearer token.
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
RESUME_AUDIENCE = "helpline:resume"
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


@dataclass(frozen=True, slots=True)
class ResumeClaims:
    customer_id: str
    conversation_id: str
    expires_at: datetime


class ResumeRefused(NotAuthenticated):
    """A resume token that cannot be exchanged; ``reason`` says why (docs/protocol.md "Resume links")."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


VERIFIED_CACHE_SIZE = 20_000


class Tokens:
    def __init__(self, secret_key: str) -> None:
        self._key = secret_key
        # A token's signature and claims never change, so one that verified once is remembered (until
        # it expires) instead of being decoded and HMAC-checked on every request: ~150 µs of a
        # message's CPU in bench/. Keyed by the exact token string and audience.
        self._verified: dict[tuple[str, str], TokenClaims] = {}

    def issue(self, subject: str, kind: str, seconds: int, audience: str = ACCESS_AUDIENCE, **extra: str) -> str:
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "sub": subject,
            "kind": kind,
            "aud": audience,
            "iat": now,
            "exp": now + seconds,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def issue_resume(self, customer_id: str, conversation_id: str, seconds: int) -> str:
        """The token of a link back to ``conversation_id`` for ``customer_id``, valid ``seconds``."""
        return self.issue(customer_id, "resume", seconds, RESUME_AUDIENCE, cid=conversation_id)

    def verify_resume(self, token: str) -> ResumeClaims:
        """The customer and conversation a resume token names; ``ResumeRefused`` (401) with the reason:
        ``invalid`` (malformed, or not signed by this server), ``expired``, ``wrong_purpose`` (another
        kind of token, such as an access token)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=RESUME_AUDIENCE,
                options={"require": ["sub", "exp", "aud", "iat"]},
            )
        except jwt.ExpiredSignatureError:  # checked after the signature: only a genuine token is "expired"
            raise ResumeRefused("expired", "this link has expired; start a new chat") from None
        except jwt.InvalidAudienceError:
            raise ResumeRefused("wrong_purpose", "this token is not a link to a conversation") from None
        except jwt.PyJWTError:
            raise ResumeRefused("invalid", "this link is not valid (damaged, or not from this server)") from None
        subject, conversation = claims.get("sub"), claims.get("cid")
        if claims.get("kind") != "resume" or not isinstance(subject, str) or not isinstance(conversation, str):
            raise ResumeRefused("wrong_purpose", "this token is not a link to a conversation")
        return ResumeClaims(subject, conversation, datetime.fromtimestamp(int(claims["exp"]), UTC))

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

    def verify_renewable(self, token: str, max_age_seconds: float) -> TokenClaims | None:
        """A customer access token, expired or not, that was issued less than `max_age_seconds` ago.

        Renewing a customer session (docs/protocol.md) exchanges such a token for a fresh one: the
        signature, audience and kind are checked as always; only the expiry gives way to the session's age.
        A valid staff token is no customer session to renew: None (the caller starts a new one).
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=ACCESS_AUDIENCE,
                options={"require": ["sub", "exp", "aud", "jti", "iat"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            raise NotAuthenticated("the token is invalid") from None
        if claims.get("kind") == "staff":
            return None
        if claims.get("kind") != "customer" or not isinstance(claims["sub"], str):
            raise NotAuthenticated("the token is invalid")
        issued = claims["iat"]
        if not isinstance(issued, int | float) or issued + max_age_seconds <= datetime.now(UTC).timestamp():
            raise NotAuthenticated("the customer session has expired; start a new one")
        return TokenClaims(
            subject=claims["sub"],
            kind="customer",
            jti=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )

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
