"""``--demo``: a deployment, a queue and staff users to try Helpline with (docs/protocol.md "Command line")."""

from __future__ import annotations

from helpline.services import Services

DEMO_USERS = {
    "rep": ("Riley (rep)", ["chat_user", "chat_rep", "access_conversation_entries"]),
    "trainee": ("Taylor (trainee)", ["chat_user", "chat_rep"]),
    "supervisor": ("Sam (supervisor)", ["chat_user", "access_conversation_entries", "supervisor"]),
    "admin": ("Alex (admin)", ["chat_user", "admin"]),
}


async def seed_demo(services: Services) -> None:
    """Create what is missing; reset demo passwords to the current one so the printed one works."""
    settings = services.settings
    origins = [settings.public_url.rstrip("/")] if settings.public_url else []
    password_hash = await services.accounts.passwords.hash(settings.demo_password)
    async with services.store.write() as s:
        queue = await s.queue(name="support") or await s.insert_queue("support")
        deployment = await s.deployment(key="demo")
        if deployment is None:
            await s.insert_deployment(
                key="demo",
                queue_id=queue.id,
                allowed_origins=origins,
                pre_chat_fields=[{"name": "topic", "label": "What can we help with?", "required": False}],
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
