"""A small contact center to test against: one deployment, staff of every kind, two customers.

Built through the public API wherever there is one, so the fixtures exercise what users do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

PASSWORD = "correct-horse-battery"

STAFF = {
    "rep": ["chat_user", "chat_rep", "access_conversation_entries"],
    "rep2": ["chat_user", "chat_rep", "access_conversation_entries"],
    "trainee": ["chat_user", "chat_rep"],
    "supervisor": ["chat_user", "access_conversation_entries", "supervisor"],
    "admin": ["chat_user", "admin"],
    "nochat": ["chat_rep", "access_conversation_entries"],
}


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, str] = field(default_factory=dict)
    customer_ids: dict[str, str] = field(default_factory=dict)
    queue_id: str = ""
    deployment_key: str = "web"
    deployment_id: str = ""
    conversations: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}

    async def call(self, who: str, method: str, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, json=json, headers=self.auth(who), **kwargs)

    async def customer(self, name: str, **body: Any) -> str:
        response = await self.client.post(
            f"/api/v1/deployments/{self.deployment_key}/sessions", json={"display_name": name, **body}
        )
        assert response.status_code == 201, response.text
        self.tokens[name] = response.json()["access_token"]
        self.customer_ids[name] = response.json()["customer_id"]
        return self.customer_ids[name]

    async def open_conversation(self, customer: str, **body: Any) -> str:
        response = await self.call(customer, "POST", "/api/v1/conversations", body)
        assert response.status_code in (200, 201), response.text
        conversation_id: str = response.json()["id"]
        return conversation_id

    async def send(self, who: str, conversation_id: str, text: str, message_id: str) -> httpx.Response:
        return await self.call(
            who, "POST", f"/api/v1/conversations/{conversation_id}/messages", {"id": message_id, "text": text}
        )

    async def assign(self, conversation_id: str, rep: str) -> None:
        response = await self.call(
            "supervisor",
            "POST",
            f"/api/v1/conversations/{conversation_id}/assign",
            {"user_id": self.user_ids[rep]},
        )
        assert response.status_code == 200, response.text


async def assign_to_trainee(app: FastAPI, world: World, conversation_id: str) -> None:
    """Give a conversation to the trainee, who handles the session but may not read its entries.

    Work goes only to reps who can answer it (issue 11), so the trainee holds
    ``access_conversation_entries`` while it is assigned and loses it afterwards: the state a rep is in
    when an admin withdraws the permission."""
    accounts = app.state.services.accounts
    trainee = world.user_ids["trainee"]
    await accounts.update_user(trainee, {"permissions": ["chat_user", "chat_rep", "access_conversation_entries"]})
    await world.assign(conversation_id, "trainee")
    await accounts.update_user(trainee, {"permissions": STAFF["trainee"]})


async def build_world(app: FastAPI, client: httpx.AsyncClient) -> World:
    accounts = app.state.services.accounts
    world = World(client)
    for username, permissions in STAFF.items():
        user = await accounts.create_user(username, PASSWORD, permissions)
        world.user_ids[username] = user.id
        login = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        world.tokens[username] = login.json()["access_token"]
    queue = await accounts.create_queue("support")
    world.queue_id = queue.id
    world.deployment_id = (await accounts.create_deployment("web", "support", ["https://shop.example"])).id
    await world.customer("alice")
    await world.customer("bob")
    # alice's conversation is assigned to rep; bob's waits in the queue.
    world.conversations["alice"] = await world.open_conversation("alice", id="conv-alice-1")
    world.conversations["bob"] = await world.open_conversation("bob", id="conv-bob-1")
    await world.assign(world.conversations["alice"], "rep")
    return world
