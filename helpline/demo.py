"""``--demo``: a deployment, a queue and staff users to try Helpline with (docs/protocol.md "Command line")."""

from __future__ import annotations

from helpline.config import ConfigurationError
from helpline.services import Services
from helpline.store import Store, StoreSession

DEMO_MARK = "demo"
REFUSAL = (
    "--demo refuses this database: it holds users, queues or deployments that --demo did not create, and "
    "seeding would reset the passwords and permissions of its users named rep, trainee, supervisor and admin; "
    "give --demo a database of its own (e.g. --database-url sqlite:///demo.db)"
)

DEMO_USERS = {
    "rep": ("Riley (rep)", ["chat_user", "chat_rep", "access_conversation_entries"]),
    "trainee": ("Taylor (trainee)", ["chat_user", "chat_rep"]),
    "supervisor": ("Sam (supervisor)", ["chat_user", "access_conversation_entries", "supervisor"]),
    "admin": ("Alex (admin)", ["chat_user", "admin"]),
}


# The demo's pre-chat form (helpline/domain/prechat.py): optional, so a visitor may also just type.
DEMO_PRE_CHAT = [
    {"name": "topic", "label": "What can we help with?", "type": "text", "required": False},
    {"name": "email", "label": "Email (for a reply if we miss you)", "type": "email", "required": False},
]


async def seed_demo(services: Services) -> None:
    """Create what is missing; reset demo passwords to the current one so the printed one works."""
    settings = services.settings
    origins = [settings.public_url.rstrip("/")] if settings.public_url else []
    password_hash = await services.accounts.passwords.hash(settings.demo_password)
    async with services.store.write() as s:
        await claim_for_demo(s)
        queue = await s.queue(name="support") or await s.insert_queue("support")
        deployment = await s.deployment(key="demo")
        if deployment is None:
            await s.insert_deployment(
                key="demo",
                queue_id=queue.id,
                allowed_origins=origins,
                pre_chat_fields=DEMO_PRE_CHAT,
                business_hours=None,
                identity_key=None,
            )
        elif origins and origins[0] not in deployment.allowed_origins:
            await s.update_deployment(deployment.id, allowed_origins=[*deployment.allowed_origins, *origins])
        for username, (display_name, permissions) in DEMO_USERS.items():
            user = await s.user(username=username)
            if user is None:
                user = await s.insert_user(
                    username=username,
                    display_name=display_name,
                    password_hash=password_hash,
                    permissions=permissions,
                    max_concurrent=3,
                    disabled=False,
                )
            else:
                await s.update_user(user.id, password_hash=password_hash, permissions=permissions)
            if "chat_rep" in permissions:  # reps take work from the demo queue
                await s.set_queue_membership(user.id, [queue.id])


async def claim_for_demo(s: StoreSession) -> None:
    """Mark a new database as a demo one; refuse one that ``--demo`` did not create.

    Seeding resets the demo users' passwords and permissions: on a real database that would hand its
    ``admin`` to whoever reads the printed password (issue 13). So ``--demo`` seeds only a database that
    holds nothing yet (and marks it) or one it marked before.
    """
    if await s.instance_mark(DEMO_MARK) is not None:
        return
    if not await s.is_empty():
        raise ConfigurationError(REFUSAL)
    await s.set_instance_mark(DEMO_MARK, "seeded by helpline serve --demo")


async def check_demo_database(store: Store) -> None:
    """Fail before serving, with the same message, if ``--demo`` may not seed ``store``."""
    async with store.read() as s:
        if await s.instance_mark(DEMO_MARK) is None and not await s.is_empty():
            raise ConfigurationError(REFUSAL)
