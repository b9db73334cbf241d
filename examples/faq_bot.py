"""A small FAQ bot for Helpline: keyword answers from a JSON file, and a person when it is unsure.

Set it up once (docs/integrations.md, "Service agents"):

    echo 'a-long-password' | helpline users create faqbot -p chat_user -p access_conversation_entries
    helpline api-keys create faqbot-key -p chat_user -p access_conversation_entries --user faqbot
    curl -X PUT …/api/v1/admin/queues/<queue id>/bot -d '{"user_id": "<faqbot id>"}'

then run it with the key in the environment:

    HELPLINE_BOT_KEY=hlk_… python examples/faq_bot.py --url https://chat.example.com --faq examples/faq.json

Every new conversation of the queue comes to the bot at once. It greets the customer, answers a question
whose keywords it knows, closes the conversation when the customer is done (an entry with
``"close": true``), and escalates anything else to the queue's people with a summary for them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from helpline.client import Client, Event, HelplineError

GREETING = "Hi! I'm the FAQ bot. Ask me about opening hours, shipping or returns, or ask for a person."


def load_faq(path: str | Path) -> list[dict[str, Any]]:
    """``[{"keywords": [...], "answer": "...", "close": false}, …]``, checked."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError("the FAQ file holds a JSON list of {keywords, answer} objects")
    for entry in entries:
        if not isinstance(entry.get("answer"), str) or not all(isinstance(k, str) for k in entry.get("keywords", [])):
            raise ValueError(f"an FAQ entry needs keywords (strings) and an answer: {entry!r}")
    return entries


def best_entry(faq: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    """The entry whose keywords the text mentions most; None when none matches, or two tie (unsure)."""
    words = " ".join(re.findall(r"[\w']+", text.casefold()))
    scored = []
    for entry in faq:
        hits = sum(1 for k in entry.get("keywords", []) if re.search(rf"\b{re.escape(k.casefold())}\b", words))
        if hits:
            scored.append((hits, entry))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


class FaqBot:
    def __init__(self, client: Client, faq: list[dict[str, Any]], greeting: str = GREETING) -> None:
        self.client = client
        self.faq = faq
        self.greeting = greeting

    def run(self) -> None:
        """Handle events until the client is closed (from another thread, say)."""
        for event in self.client.events():
            try:
                self.handle(event)
            except HelplineError as exc:  # one conversation's trouble (closed meanwhile…) stops nothing
                print(f"faq bot: {event.type} for {event.data.get('conversation_id')}: {exc}", file=sys.stderr)

    def handle(self, event: Event) -> None:
        data = event.data
        conversation_id = data.get("conversation_id")
        if not conversation_id:
            return
        if event.type == "conversation.routing" and data.get("state") == "assigned" and data.get("bot"):
            self.client.send_message(conversation_id, self.greeting, id=f"greeting-{conversation_id}"[:64])
        elif event.type == "conversation.message" and data.get("author", {}).get("kind") == "customer":
            self.answer(conversation_id, str(data.get("text", "")), event.id)

    def answer(self, conversation_id: str, question: str, event_id: int | None) -> None:
        entry = best_entry(self.faq, question)
        reply_id = f"faq-{event_id}" if event_id is not None else None  # a retry never answers twice
        if entry is None:
            self.client.escalate(
                conversation_id,
                summary=f'The FAQ bot could not answer the customer\'s question: "{question[:500]}"',
            )
            return
        self.client.send_message(conversation_id, entry["answer"], id=reply_id)
        if entry.get("close"):
            self.client.close_conversation(conversation_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A keyword FAQ bot for Helpline.")
    parser.add_argument("--url", required=True, help="the Helpline server, e.g. https://chat.example.com")
    parser.add_argument("--faq", required=True, help="the JSON file of {keywords, answer, close?} entries")
    arguments = parser.parse_args(argv)
    key = os.environ.get("HELPLINE_BOT_KEY")
    if not key:
        parser.error("set HELPLINE_BOT_KEY to the bot's API key (hlk_…); keys never go on a command line")
    with Client(arguments.url, token=key) as client:
        try:
            FaqBot(client, load_faq(arguments.faq)).run()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
