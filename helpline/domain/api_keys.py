"""API keys for integrations: named, with a subset of the permissions, shown once, stored hashed.

A key is ``hlk_`` and 43 random URL-safe characters (256 bits). It is stored as its HMAC-SHA256 keyed
with ``HELPLINE_SECRET_KEY``: a key that random cannot be guessed from its hash, so a slow password hash
(argon2, ~0.1 s a check) would only slow every request; a stolen table without the secret is useless.

Keys travel only in ``Authorization: Bearer hlk_…`` (never in a query string: ``?ticket=`` takes stream
tickets only, and a key is refused there) and are never logged or echoed. A key may act as a staff
user (``user_id``: a bot that is routed work), holding at most that user's permissions, or as itself.

Revoking applies on every node within a second: the cache of checked keys is dropped through the
principal invalidation (domain/invalidation.py), whose bus message reaches every node. ``last_used_at``
is kept in memory and written at most every ``LAST_USED_FLUSH_SECONDS`` (one batched write), not once
per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime
from typing import Any

from helpline.config import ConfigurationError, Settings
from helpline.domain.invalidation import Invalidation
from helpline.domain.permissions import ALL_PERMISSIONS
from helpline.errors import Conflict, HelplineError, NotAuthenticated, NotFound, ValidationFailed
from helpline.records import ApiKey, Principal, isoformat, new_id, utcnow
from helpline.store import Store, StoreSession

logger = logging.getLogger("helpline.api_keys")

PREFIX = "hlk_"
LAST_USED_FLUSH_SECONDS = 60.0
CACHE_SIZE = 10_000


def is_api_key(token: str) -> bool:
    return token.startswith(PREFIX)


def public(key: ApiKey, last_used: datetime | None = None) -> dict[str, Any]:
    used = max((m for m in (key.last_used_at, last_used) if m is not None), default=None, key=_naive)
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "permissions": list(key.permissions),
        "user_id": key.user_id,
        "created_at": isoformat(key.created_at),
        "last_used_at": isoformat(used) if used else None,
        "revoked_at": isoformat(key.revoked_at) if key.revoked_at else None,
    }


class ApiKeys:
    def __init__(self, store: Store, settings: Settings, invalidation: Invalidation) -> None:
        self.store = store
        self._secret = settings.secret_key.encode()
        self.invalidation = invalidation
        invalidation.on_invalidate(self._forget)
        self._checked: dict[str, tuple[float, Principal]] = {}  # key hash → (valid until, principal)
        self._used: dict[str, datetime] = {}  # key id → last use not yet written
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None

    def hash(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    # -- admin -------------------------------------------------------------------------------------
    async def create(
        self, name: str, permissions: list[str], *, username: str | None = None, user_id: str | None = None
    ) -> dict[str, Any]:
        """A new key, returned in full only here; ``username``/``user_id``: it acts as that staff user."""
        if not self._secret:
            raise ConfigurationError("HELPLINE_SECRET_KEY must be set (the server's own): keys are hashed with it")
        wanted = sorted(set(permissions))
        unknown = set(wanted) - ALL_PERMISSIONS
        if unknown or not wanted:
            raise ValidationFailed(
                f"unknown permissions: {', '.join(sorted(unknown))}" if unknown else "name at least one permission"
            )
        key = PREFIX + secrets.token_urlsafe(32)
        async with self.store.write() as s:
            if await s.api_key(name=name) is not None:
                raise Conflict("an API key with this name exists")
            if username is not None or user_id is not None:
                user = await s.user(username=username) if username is not None else await s.user(id=user_id)
                if user is None:
                    raise NotFound(f"no user named {username!r}" if username is not None else "no such user")
                user_id = user.id
            stored = await s.insert_api_key(
                id=new_id("key"),
                name=name,
                key_hash=self.hash(key),
                prefix=key[: len(PREFIX) + 6],
                permissions=wanted,
                user_id=user_id,
                created_at=utcnow(),
                last_used_at=None,
                revoked_at=None,
            )
        return {**public(stored), "key": key}

    async def list(self) -> list[dict[str, Any]]:
        async with self.store.read() as s:
            return [public(k, self._used.get(k.id)) for k in await s.api_keys()]

    async def revoke(self, *, key_id: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Revoke at once: refused from the next request on, on this node and (within a second) every other."""
        async with self.store.write() as s:
            key = await s.api_key(id=key_id) if key_id is not None else await s.api_key(name=name)
            if key is None:
                raise NotFound("no such API key")
            await s.revoke_api_key(key.id, utcnow())
            revoked = await s.api_key(id=key.id)
        assert revoked is not None
        await self.invalidation.invalidate_principal(revoked.principal_id)
        return public(revoked, self._used.get(revoked.id))

    # -- authentication ------------------------------------------------------------------------------
    async def authenticate(self, key: str) -> Principal:
        digest = self.hash(key)
        now = time.monotonic()
        cached = self._checked.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            generation = self.invalidation.generation
            async with self.store.read() as s:
                principal = await _load(s, digest)
            if generation == self.invalidation.generation:  # no invalidation arrived while we read
                if len(self._checked) >= CACHE_SIZE:
                    self._checked.clear()
                self._checked[digest] = (now + self.invalidation.cache_seconds(), principal)
        assert principal.api_key_id is not None
        self._used[principal.api_key_id] = utcnow()
        if now - self._last_flush >= LAST_USED_FLUSH_SECONDS and (self._flushing is None or self._flushing.done()):
            self._last_flush = now
            self._flushing = asyncio.get_running_loop().create_task(self.flush())
        return principal

    async def current(self, principal: Principal) -> Principal | None:
        """``principal`` (an API key's) as the store has it now, or None once revoked."""
        assert principal.api_key_id is not None

        try:
            async with self.store.read() as s:
                key = await s.api_key(id=principal.api_key_id)
                return None if key is None else await _principal_of(s, key)
        except NotAuthenticated:
            return None

    async def flush(self) -> None:
        """Write the last-used times gathered since the previous flush, in one write."""
        used, self._used = self._used, {}
        if not used:
            return
        try:
            async with self.store.write() as s:
                await s.touch_api_keys(used)
        except HelplineError:
            logger.warning("API keys' last-used times not recorded (the database is unavailable)")

    def _forget(self, principal_id: str | None) -> None:
        if principal_id is None:
            self._checked.clear()
            return
        for digest, (_, principal) in list(self._checked.items()):
            if principal.id == principal_id:
                del self._checked[digest]


async def _load(s: StoreSession, digest: str) -> Principal:
    key = await s.api_key(key_hash=digest)
    if key is None:
        raise NotAuthenticated("the API key is not valid")
    return await _principal_of(s, key)


async def _principal_of(s: StoreSession, key: ApiKey) -> Principal:
    if key.revoked_at is not None:
        raise NotAuthenticated("the API key has been revoked")
    if key.user_id is None:
        return Principal(key.id, "staff", key.name, frozenset(key.permissions), api_key_id=key.id)
    user = await s.user(id=key.user_id)
    if user is None or user.disabled:
        raise NotAuthenticated("the API key's user no longer exists or is disabled")
    granted = frozenset(key.permissions) & frozenset(user.permissions)  # never more than its user holds
    return Principal(user.id, "staff", user.display_name, granted, api_key_id=key.id)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)
