"""Canned responses: saved replies a rep finds by typing ``/`` and a shortcut in the reply box.

Shared ones (no owner) are managed by supervisors and admins; every rep may keep personal ones, which
only their owner sees and changes. ``{customer.name}`` and ``{rep.name}`` in the text are filled in by
the console when the response is inserted (the rep still reads and sends it).
"""

from __future__ import annotations

from typing import Any

from helpline.domain import permissions as perms
from helpline.domain.permissions import Permission
from helpline.errors import Conflict, Forbidden, NotFound, PermissionDenied, ValidationFailed
from helpline.records import Principal, new_id, utcnow
from helpline.store import Store, StoreSession
from helpline.store.canned import CannedResponse

VARIABLES = ("{customer.name}", "{rep.name}")


def manages_shared(principal: Principal) -> bool:
    return principal.has(Permission.SUPERVISOR) or principal.has(Permission.ADMIN)


def _require_reader(principal: Principal) -> None:
    if principal.is_customer:
        raise Forbidden("canned responses are for staff")
    perms.require(principal, Permission.CHAT_USER)
    if not (principal.has(Permission.CHAT_REP) or manages_shared(principal)):
        raise PermissionDenied(Permission.CHAT_REP.value)


class CannedResponses:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        _require_reader(principal)
        async with self.store.read() as s:
            return [c.public() for c in await s.canned_responses(principal.id)]

    async def create(
        self, principal: Principal, *, shortcut: str, title: str, text: str, queue_id: str | None, personal: bool | None
    ) -> dict[str, Any]:
        _require_reader(principal)
        if personal is None:
            personal = not manages_shared(principal)
        if not personal and not manages_shared(principal):
            raise PermissionDenied(Permission.SUPERVISOR.value, "shared canned responses are managed by supervisors")
        owner = principal.id if personal else None
        now = utcnow()
        async with self.store.write() as s:
            await _check(s, shortcut.lower(), owner, queue_id)
            created = await s.insert_canned_response(
                id=new_id("can"),
                shortcut=shortcut.lower(),
                title=title,
                text=text,
                queue_id=queue_id,
                owner_id=owner,
                created_at=now,
                updated_at=now,
            )
        return created.public()

    async def update(self, principal: Principal, canned_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        async with self.store.write() as s:
            found = await self._editable(s, principal, canned_id)
            if "shortcut" in changes:
                changes["shortcut"] = changes["shortcut"].lower()
            if "shortcut" in changes or "queue_id" in changes:
                await _check(
                    s, changes.get("shortcut", found.shortcut), found.owner_id, changes.get("queue_id"), found.id
                )
            if changes:
                await s.update_canned_response(found.id, updated_at=utcnow(), **changes)
            updated = await s.canned_response(found.id)
        assert updated is not None
        return updated.public()

    async def delete(self, principal: Principal, canned_id: str) -> None:
        async with self.store.write() as s:
            found = await self._editable(s, principal, canned_id)
            await s.delete_canned_response(found.id)

    async def _editable(self, s: StoreSession, principal: Principal, canned_id: str) -> CannedResponse:
        _require_reader(principal)
        found = await s.canned_response(canned_id)
        if found is None or (found.owner_id is not None and found.owner_id != principal.id):
            raise NotFound("no such canned response")  # someone else's personal one: as if it did not exist
        if found.owner_id is None and not manages_shared(principal):
            raise PermissionDenied(Permission.SUPERVISOR.value, "shared canned responses are managed by supervisors")
        return found


async def _check(
    s: StoreSession, shortcut: str, owner_id: str | None, queue_id: str | None, except_id: str | None = None
) -> None:
    if await s.canned_shortcut_taken(shortcut, owner_id, except_id):
        raise Conflict(f"the shortcut /{shortcut} is taken; pick another")
    if queue_id is not None and await s.queue(id=queue_id) is None:
        raise ValidationFailed(f"no queue with id {queue_id!r}")
