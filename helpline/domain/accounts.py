"""Identities: staff login, customer sessions, stream tickets, presence, and the admin resources."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from helpline.config import Settings
from helpline.domain import permissions as perms
from helpline.domain import prechat
from helpline.domain.api_keys import ApiKeys, is_api_key
from helpline.domain.invalidation import Invalidation
from helpline.domain.permissions import ALL_PERMISSIONS
from helpline.domain.security import (
    TICKET_AUDIENCE,
    Passwords,
    ResumeRefused,
    Tokens,
    verify_identity_token,
)
from helpline.errors import Conflict, Forbidden, NotAuthenticated, NotFound, ValidationFailed
from helpline.events import EventType
from helpline.records import Customer, Deployment, Principal, Queue, User, utcnow
from helpline.store import Store, StoreSession

PRINCIPAL_CACHE_SIZE = 100_000


class Accounts:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        invalidation: Invalidation | None = None,
        *,
        on_routing_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings
        # Without a bus (the CLI) an invalidation only applies here; a server passes its app's own.
        self.invalidation = invalidation or Invalidation(None)
        self.invalidation.on_invalidate(self._forget)
        self.tokens = Tokens(settings.secret_key)
        self.passwords = Passwords(settings.password_time_cost, settings.password_memory_kib)
        self.on_routing_change = on_routing_change  # the router's wake(): a rep came online or went away
        self.deployments_version = 0  # bumped on every deployment change, so caches of them refresh
        self._principals: dict[str, tuple[float, Principal]] = {}  # subject → (valid until, principal)
        self.api_keys = ApiKeys(store, settings, self.invalidation)  # `Bearer hlk_…` (issue 14)

    # -- authentication -------------------------------------------------------------------------
    async def login(self, username: str, password: str) -> dict[str, Any]:
        async with self.store.read() as s:
            user = await s.user(username=username)
        if not await self.passwords.verify(user.password_hash if user else None, password) or user is None:
            raise NotAuthenticated("wrong username or password")
        if user.disabled:
            raise NotAuthenticated("this account is disabled")
        seconds = self.settings.access_token_seconds
        return {
            "access_token": self.tokens.issue(user.id, "staff", seconds),
            "token_type": "bearer",
            "expires_in": seconds,
            "user": _me(user),
        }

    async def principal(self, token: str, *, audience: str | None = None) -> Principal:
        """Who a bearer token (or, with ``audience=TICKET_AUDIENCE``, a stream ticket) belongs to.

        The token's signature and expiry are checked on every call. Who it names is cached (a database
        read per request was a sixth of a message's cost in bench/) until an invalidation drops it
        (domain/invalidation.py: every node within a second of a change), and for at most
        ``Invalidation.cache_seconds()`` in any case.
        """
        if is_api_key(token):
            if audience is not None:  # a key is never a stream ticket (nor accepted in a query string)
                raise NotAuthenticated("API keys go in the Authorization header, never in a URL")
            return await self.api_keys.authenticate(token)
        claims = self.tokens.verify(token, audience) if audience else self.tokens.verify(token)
        cached = self._principals.get(claims.subject)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self.invalidation.generation
        principal = await self._load_principal(claims.kind, claims.subject)
        if generation == self.invalidation.generation:  # no invalidation arrived while we read
            if len(self._principals) >= PRINCIPAL_CACHE_SIZE:
                self._principals.clear()  # bounded memory; the next reads refill it
            self._principals[claims.subject] = (now + self.invalidation.cache_seconds(), principal)
        return principal

    async def current(self, principal: Principal) -> Principal | None:
        """``principal`` as the store has it now (no cache), or None if it is gone or disabled."""
        if principal.api_key_id is not None:
            return await self.api_keys.current(principal)
        try:
            return await self._load_principal(principal.kind, principal.id)
        except NotAuthenticated:
            return None

    def _forget(self, principal_id: str | None) -> None:
        if principal_id is None:
            self._principals.clear()
        else:
            self._principals.pop(principal_id, None)

    async def _load_principal(self, kind: str, subject: str) -> Principal:
        async def read(s: StoreSession) -> Principal:
            if kind == "staff":
                user = await s.user(id=subject)
                if user is None or user.disabled:
                    raise NotAuthenticated("the account no longer exists or is disabled")
                return Principal(user.id, "staff", user.display_name, frozenset(user.permissions))
            customer = await s.customer(id=subject)
            if customer is None:
                raise NotAuthenticated("the customer session no longer exists")
            return Principal(customer.id, "customer", customer.display_name, deployment_id=customer.deployment_id)

        return await self.store.hot_read(read)

    async def redeem_ticket(self, ticket: str) -> Principal:
        claims = self.tokens.verify(ticket, TICKET_AUDIENCE)
        async with self.store.write() as s:
            if not await s.use_stream_ticket(claims.jti, claims.expires_at):
                raise NotAuthenticated("this stream ticket was already used")
        return await self.principal(ticket, audience=TICKET_AUDIENCE)

    def stream_ticket(self, principal: Principal) -> dict[str, Any]:
        perms.require_staff_chat(principal)
        if principal.api_key_id is not None:  # a ticket would carry the user's own permissions, not the key's
            raise Forbidden("programs holding an API key send it in the Authorization header; no ticket needed")
        seconds = min(60, self.settings.stream_ticket_seconds)
        token = self.tokens.issue(principal.id, principal.kind, seconds, TICKET_AUDIENCE)
        return {"ticket": token, "expires_in": seconds}

    async def start_customer_session(
        self,
        deployment_key: str,
        *,
        origin: str | None,
        display_name: str | None,
        email: str | None,
        identity_token: str | None,
        renew_token: str | None = None,
    ) -> dict[str, Any]:
        """A new session, or with `renew_token` (the customer's current or recently expired access token,
        issued within `customer_session_days`) a fresh token for the same customer."""
        renewing = None
        # Only a customer's token renews; a staff token or API key in the header starts a new session, as
        # the endpoint always did for any caller.
        if renew_token is not None and identity_token is None and not is_api_key(renew_token):
            max_age = max(self.settings.customer_session_days * 86400, self.settings.customer_token_seconds)
            renewing = self.tokens.verify_renewable(renew_token, max_age)
        async with self.store.write() as s:
            deployment = await s.deployment(key=deployment_key)
            if deployment is None:
                raise NotFound("no such deployment")
            if origin is not None and origin not in deployment.allowed_origins:
                raise Forbidden("this origin is not allowed for the deployment")
            customer = None
            if renewing is not None:
                customer = await s.customer(id=renewing.subject)
                if customer is None or customer.deployment_id != deployment.id:
                    raise NotAuthenticated("this customer session does not belong to the deployment")
            if identity_token is not None:
                identity = verify_identity_token(identity_token, deployment.identity_key, deployment.key)
                customer = await s.customer(deployment_id=deployment.id, external_id=identity.external_id)
                if customer is None:
                    customer = await s.insert_customer(
                        deployment_id=deployment.id,
                        external_id=identity.external_id,
                        display_name=identity.display_name or display_name or "Customer",
                        email=identity.email or email,
                        verified=True,
                    )
            if customer is None:
                customer = await s.insert_customer(
                    deployment_id=deployment.id,
                    external_id=None,
                    display_name=display_name or "Guest",
                    email=email,
                    verified=False,
                )
            # A verified customer resumes from the start of its history on a new device; a guest
            # starts at the log's head, so its first stream replays nothing that predates it.
            head = 0 if customer.verified else await s.head()
        return self._session(customer, deployment, head)

    async def resume_customer_session(self, token: str, *, origin: str | None) -> dict[str, Any]:
        """Exchange the resume token of an email's link for a session of its customer, on any browser:
        the answer of a new session, with the conversation to show (docs/protocol.md "Resume links")."""
        claims = self.tokens.verify_resume(token)
        async with self.store.read() as s:
            customer = await s.customer(id=claims.customer_id)
            if customer is None:
                raise ResumeRefused("customer_gone", "this link's chat no longer exists (its customer was erased)")
            conversation = await s.conversation(claims.conversation_id)
            if conversation is None or conversation.customer_id != customer.id:
                raise ResumeRefused("conversation_gone", "this link's conversation no longer exists")
            deployment = await s.deployment(id=customer.deployment_id)
            if deployment is None:
                raise ResumeRefused("customer_gone", "this link's chat no longer exists")
            if origin is not None and origin not in deployment.allowed_origins:
                raise Forbidden("this origin is not allowed for the deployment")
            # History comes from the conversation's entries; the stream starts at the head (as a guest's).
            head = 0 if customer.verified else await s.head()
        return {**self._session(customer, deployment, head), "conversation_id": conversation.id}

    def _session(self, customer: Customer, deployment: Deployment, head: int) -> dict[str, Any]:
        seconds = self.settings.customer_token_seconds
        session_seconds = max(seconds, int(self.settings.customer_session_days * 86400))
        fields = list(deployment.pre_chat_fields)
        known = prechat.known_answers(
            fields, verified=customer.verified, email=customer.email, name=customer.display_name
        )
        return {
            "access_token": self.tokens.issue(customer.id, "customer", seconds),
            "customer_id": customer.id,
            "verified": customer.verified,
            "expires_in": seconds,
            "session_expires_in": session_seconds,  # renewable until then, and each renewal extends it
            "last_event_id": str(head),
            "pre_chat_fields": prechat.still_asked(fields, known),
        }

    # -- presence -------------------------------------------------------------------------------
    async def set_presence(self, principal: Principal, status: str) -> dict[str, Any]:
        perms.require_rep(principal)
        async with self.store.write() as s:
            # Going online starts the disconnect grace period now, whether or not a stream is open yet.
            now = utcnow()
            await s.update_user(
                principal.id, presence=status, presence_before_disconnect=None, last_stream_at=now, presence_since=now
            )
            await s.append(
                EventType.PRESENCE_CHANGED,
                {"user_id": principal.id, "display_name": principal.display_name, "status": status},
                conversation_id=None,
                recipients={principal.id},
            )
        self.on_routing_change()
        return {"user_id": principal.id, "status": status}

    async def presence(self, principal: Principal) -> dict[str, Any]:
        perms.require_rep(principal)
        async with self.store.read() as s:
            user = await s.user(id=principal.id)
        return {"user_id": principal.id, "status": user.presence if user else "offline"}

    # -- admin ----------------------------------------------------------------------------------
    async def create_user(
        self,
        username: str,
        password: str,
        permissions: list[str],
        *,
        display_name: str | None = None,
        max_concurrent: int = 3,
        queue_ids: list[str] | None = None,
    ) -> User:
        unknown = set(permissions) - ALL_PERMISSIONS
        if unknown:
            raise ValidationFailed(f"unknown permissions: {', '.join(sorted(unknown))}")
        password_hash = await self.passwords.hash(password)
        async with self.store.write() as s:
            if await s.user(username=username) is not None:
                raise Conflict("a user with this username exists")
            user = await s.insert_user(
                username=username,
                display_name=display_name or username,
                password_hash=password_hash,
                permissions=sorted(set(permissions)),
                max_concurrent=max_concurrent,
                disabled=False,
            )
            if queue_ids:
                await _check_queues(s, queue_ids)
                await s.set_queue_membership(user.id, queue_ids)
            return user

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> User:
        if "permissions" in changes:
            unknown = set(changes["permissions"]) - ALL_PERMISSIONS
            if unknown:
                raise ValidationFailed(f"unknown permissions: {', '.join(sorted(unknown))}")
            changes["permissions"] = sorted(set(changes["permissions"]))
        if "password" in changes:
            changes["password_hash"] = await self.passwords.hash(changes.pop("password"))
        queue_ids = changes.pop("queue_ids", None)
        async with self.store.write() as s:
            if await s.user(id=user_id) is None:
                raise NotFound("no such user")
            if queue_ids is not None:
                await _check_queues(s, queue_ids)
                await s.set_queue_membership(user_id, queue_ids)
            if changes:
                await s.update_user(user_id, **changes)
            user = await s.user(id=user_id)
        await self.invalidation.invalidate_principal(user_id)  # committed: every node reloads it
        assert user is not None
        return user

    async def users(self) -> list[User]:
        async with self.store.read() as s:
            return await s.users()

    async def describe(self, user: User) -> dict[str, Any]:
        """A user as the admin API shows it, with the queues it takes work from."""
        async with self.store.read() as s:
            return {**user.public(), "queue_ids": await s.user_queue_ids(user.id)}

    async def user(self, user_id: str) -> User:
        async with self.store.read() as s:
            user = await s.user(id=user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def user_named(self, username: str) -> User:
        async with self.store.read() as s:
            user = await s.user(username=username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        return user

    async def queue_named(self, name: str) -> Queue:
        async with self.store.read() as s:
            queue = await s.queue(name=name)
        if queue is None:
            raise NotFound(f"no queue named {name!r}")
        return queue

    async def deployment_keyed(self, key: str) -> Deployment:
        async with self.store.read() as s:
            deployment = await s.deployment(key=key)
        if deployment is None:
            raise NotFound(f"no deployment with key {key!r}")
        return deployment

    async def create_queue(self, name: str) -> Queue:
        async with self.store.write() as s:
            if await s.queue(name=name) is not None:
                raise Conflict("a queue with this name exists")
            return await s.insert_queue(name)

    async def update_queue(self, queue_id: str, changes: dict[str, Any]) -> Queue:
        async with self.store.write() as s:
            if await s.queue(id=queue_id) is None:
                raise NotFound("no such queue")
            name = changes.get("name")
            if name is not None:
                other = await s.queue(name=name)
                if other is not None and other.id != queue_id:
                    raise Conflict("a queue with this name exists")
            if "dispositions" in changes:
                changes["dispositions"] = list(dict.fromkeys(changes["dispositions"]))
            if changes:
                await s.update_queue(queue_id, **changes)
            queue = await s.queue(id=queue_id)
        assert queue is not None
        return queue

    async def queues(self) -> list[Queue]:
        async with self.store.read() as s:
            return await s.queues()

    async def create_deployment(
        self,
        key: str,
        queue_name: str,
        allowed_origins: list[str],
        *,
        pre_chat_fields: list[dict[str, Any]] | None = None,
        business_hours: dict[str, Any] | None = None,
        identity_key: str | None = None,
        greeting: str | None = None,
        attachment_max_bytes: int | None = None,
        attachment_types: list[str] | None = None,
    ) -> Deployment:
        async with self.store.write() as s:
            queue = await s.queue(name=queue_name)
            if queue is None:
                raise NotFound(f"no queue named {queue_name!r}")
            await _routing_queues_exist(s, pre_chat_fields or [])
            if await s.deployment(key=key) is not None:
                raise Conflict("a deployment with this key exists")
            self.deployments_version += 1
            return await s.insert_deployment(
                key=key,
                queue_id=queue.id,
                allowed_origins=list(dict.fromkeys(allowed_origins)),
                pre_chat_fields=pre_chat_fields or [],
                business_hours=business_hours,
                identity_key=identity_key,
                greeting=greeting,
                attachment_max_bytes=attachment_max_bytes,
                attachment_types=attachment_types,
            )

    async def update_deployment(self, deployment_id: str, changes: dict[str, Any]) -> Deployment:
        async with self.store.write() as s:
            if await s.deployment(id=deployment_id) is None:
                raise NotFound("no such deployment")
            await _routing_queues_exist(s, changes.get("pre_chat_fields") or [])
            if changes:
                await s.update_deployment(deployment_id, **changes)
                self.deployments_version += 1
            deployment = await s.deployment(id=deployment_id)
        assert deployment is not None
        return deployment

    async def deployments(self) -> list[Deployment]:
        async with self.store.read() as s:
            return await s.deployments()


async def _routing_queues_exist(s: StoreSession, fields: list[dict[str, Any]]) -> None:
    """A pre-chat option may route only to a queue that exists (else the conversation would be lost)."""
    for name in sorted(prechat.routing_queues(fields)):
        if await s.queue(name=name) is None:
            raise ValidationFailed(
                f"pre_chat_fields: an option routes to {name!r}, and there is no queue of that name",
                errors=[{"loc": ["body", "pre_chat_fields"], "msg": f"no queue named {name!r}", "type": "value_error"}],
            )


def _me(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "permissions": list(user.permissions),
    }


async def _check_queues(s: Any, queue_ids: list[str]) -> None:
    for queue_id in queue_ids:
        if await s.queue(id=queue_id) is None:
            raise ValidationFailed(f"no queue with id {queue_id!r}")
