"""The ``helpline`` command line (docs/protocol.md "Command line").

Every option also reads ``HELPLINE_<OPTION>`` from the environment; flags win over the environment.
"""

from __future__ import annotations

import asyncio
import getpass
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from helpline.config import DEFAULT_DATABASE_URL, ConfigurationError, Settings
from helpline.errors import HelplineError

app = typer.Typer(help="Helpline: real-time contact-center web chat over Server-Sent Events.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Staff users.", no_args_is_help=True)
queues_app = typer.Typer(help="Queues.", no_args_is_help=True)
deployments_app = typer.Typer(help="Deployments (website channels).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(queues_app, name="queues")
app.add_typer(deployments_app, name="deployments")
customers_app = typer.Typer(help="Customers (erasure on request).", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
webhooks_app = typer.Typer(help="Webhook endpoints (signed event deliveries).", no_args_is_help=True)
api_keys_app = typer.Typer(help="API keys for integrations.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(api_keys_app, name="api-keys")

T = TypeVar("T")
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="sqlite:///file.db or postgresql://…")]


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def run(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (ConfigurationError, HelplineError) as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


async def _with_accounts(database_url: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    from helpline.bus import open_bus
    from helpline.domain.accounts import Accounts
    from helpline.domain.invalidation import Invalidation
    from helpline.store import open_store

    settings = Settings.from_env(database_url=database_url)
    store = await open_store(settings.database_url, migrate=True)
    # With a shared bus, running servers hear of a changed user at once (its cached identity and streams go).
    bus = None if settings.bus_url.startswith("memory:") else open_bus(settings.bus_url)
    try:
        if bus is not None:
            await bus.connect()
        return await action(Accounts(store, settings, Invalidation(bus)))
    finally:
        if bus is not None:
            await bus.disconnect()
        await store.close()


def _print_version(value: bool) -> None:
    if value:
        from helpline import __version__

        typer.echo(f"helpline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Helpline: real-time contact-center web chat over Server-Sent Events."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HELPLINE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HELPLINE_PORT")] = 8000,
    database_url: DatabaseUrl = None,
    bus_url: Annotated[str | None, typer.Option("--bus-url", help="memory:// or redis://…")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="seed demo data and serve the demo site")] = False,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            "--trusted-proxies",
            help="reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For / Forwarded is believed",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            envvar="HELPLINE_WORKERS",
            min=1,
            max=256,
            help="server processes sharing the port; more than 1 needs --bus-url redis://…",
        ),
    ] = 1,
) -> None:
    """Run the server."""
    from helpline.app import create_app
    from helpline.runner import build_server, log_like_uvicorn

    log_like_uvicorn()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    try:
        flags: dict[str, Any] = {"database_url": database_url, "bus_url": bus_url, "trusted_proxies": trusted_proxies}
        settings = Settings.from_env(**flags, demo=demo or None)
        if settings.demo and not settings.public_url:
            settings = Settings.from_env(**flags, demo=True, public_url=url)
        settings = settings.checked()
        if settings.demo:
            run(lambda: _check_demo_database(settings))
        if workers > 1:
            from helpline.workers import check

            check(settings, workers)
            application = None
        else:
            application = create_app(settings)
    except ConfigurationError as exc:
        fail(str(exc))
        return
    processes = f", {workers} worker processes" if workers > 1 else ""
    typer.echo(
        f"Helpline is starting at {url}  (database {_redacted(settings.database_url)}, "
        f"bus {_redacted(settings.bus_url)}{processes})"
    )
    if settings.demo:
        typer.echo(f"  demo site:  {url}/          console: {url}/console          API docs: {url}/docs")
        typer.echo(f"  staff users rep, trainee, supervisor, admin — password: {settings.demo_password}")
    if application is None:
        from helpline.workers import serve_workers

        try:
            code = serve_workers(settings, host, port, workers)
        except ConfigurationError as exc:
            fail(str(exc))
            return
        raise typer.Exit(code)
    build_server(application, host, port, freeze_startup_heap=True).run()


async def _check_demo_database(settings: Settings) -> None:
    from helpline.demo import check_demo_database
    from helpline.store import open_store

    store = await open_store(settings.database_url)
    try:
        await check_demo_database(store)
    finally:
        await store.close()


def _redacted(url: str) -> str:
    from helpline.urls import redact

    return redact(url)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply schema migrations."""
    from helpline.store import open_store

    async def work() -> None:
        settings = Settings.from_env(database_url=database_url)
        store = await open_store(settings.database_url, migrate=True)
        await store.close()

    run(work)
    typer.echo("database is up to date")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="where to write the copy")],
    force: Annotated[bool, typer.Option("--force", help="replace PATH if it exists")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A consistent copy of an SQLite database, safe while the server runs (PostgreSQL: use pg_dump)."""
    from helpline.store.backup import backup_sqlite

    try:
        settings = Settings.from_env(database_url=database_url)
        folder = Path(settings.attachment_dir) if settings.attachment_dir else None
        done = backup_sqlite(settings.database_url, path, overwrite=force, attachment_dir=folder)
    except ConfigurationError as exc:
        fail(str(exc))
        return
    except sqlite3.Error as exc:
        fail(f"the backup failed: {exc}")
        return
    files = f", {done.attachments} attachment(s) to {done.path}-attachments" if done.attachments else ""
    typer.echo(f"backed up to {done.path} ({done.size} bytes, events up to id {done.last_event_id}{files})")


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat password: "):
            fail("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        fail("the password must have at least 8 characters")
    return password


@users_app.command("create")
def users_create(
    username: str,
    permission: Annotated[list[str], typer.Option("--permission", "-p", help="repeat for each permission")],
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a staff user; the password is read from stdin (or prompted for)."""
    password = _read_password()
    user = run(
        lambda: _with_accounts(
            database_url, lambda a: a.create_user(username, password, permission, display_name=display_name)
        )
    )
    typer.echo(f"created user {user.username} ({user.id}) with {', '.join(user.permissions)}")


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the staff users: permissions, capacity, queues, whether disabled."""

    async def action(accounts: Any) -> list[dict[str, Any]]:
        names = {q.id: q.name for q in await accounts.queues()}
        described = [await accounts.describe(u) for u in await accounts.users()]
        return [
            {**d, "queues": [names.get(q, q) for q in d.pop("queue_ids")], "capacity": d.pop("max_concurrent")}
            for d in described
        ]

    users = run(lambda: _with_accounts(database_url, action))
    columns = ["username", "display_name", "permissions", "capacity", "queues", "disabled", "id"]
    _show(users, columns, as_json)


@users_app.command("update")
def users_update(
    username: str,
    permission: Annotated[
        list[str] | None, typer.Option("--permission", "-p", help="the new set of permissions; repeat for each")
    ] = None,
    capacity: Annotated[
        int | None, typer.Option("--capacity", min=0, max=100, help="conversations at once (routing)")
    ] = None,
    queue: Annotated[list[str] | None, typer.Option("--queue", help="the queues it takes work from (names)")] = None,
    no_queues: Annotated[bool, typer.Option("--no-queues", help="take work from no queue")] = False,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    disable: Annotated[
        bool | None, typer.Option("--disable/--enable", help="a disabled user cannot log in; its streams end")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Change a staff user's permissions, capacity, queues, display name, or disable/enable it."""
    if queue and no_queues:
        fail("--queue and --no-queues contradict each other")

    async def action(accounts: Any) -> Any:
        user = await accounts.user_named(username)
        changes: dict[str, Any] = {}
        if permission is not None:
            changes["permissions"] = permission
        if capacity is not None:
            changes["max_concurrent"] = capacity
        if display_name is not None:
            changes["display_name"] = display_name
        if disable is not None:
            changes["disabled"] = disable
        if queue or no_queues:
            changes["queue_ids"] = [(await accounts.queue_named(name)).id for name in queue or []]
        return await accounts.update_user(user.id, changes)

    user = run(lambda: _with_accounts(database_url, action))
    state = "disabled" if user.disabled else "enabled"
    typer.echo(
        f"updated user {user.username} ({user.id}): {', '.join(user.permissions)}; "
        f"capacity {user.max_concurrent}; {state}"
    )


@users_app.command("disable")
def users_disable(username: str, database_url: DatabaseUrl = None) -> None:
    """Disable a staff user: it can no longer log in, and its open streams end (same as update --disable)."""

    async def action(accounts: Any) -> Any:
        user = await accounts.user_named(username)
        return await accounts.update_user(user.id, {"disabled": True})

    user = run(lambda: _with_accounts(database_url, action))
    typer.echo(f"disabled user {user.username} ({user.id})")


@queues_app.command("create")
def queues_create(name: str, database_url: DatabaseUrl = None) -> None:
    """Create a queue."""
    queue = run(lambda: _with_accounts(database_url, lambda a: a.create_queue(name)))
    typer.echo(f"created queue {queue.name} ({queue.id})")


@queues_app.command("list")
def queues_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the queues."""
    queues = run(lambda: _with_accounts(database_url, lambda a: a.queues()))
    _show([q.public() for q in queues], ["name", "id", "created_at"], as_json)


@deployments_app.command("create")
def deployments_create(
    key: str,
    queue: Annotated[str, typer.Option("--queue", help="the queue's name")],
    allowed_origin: Annotated[list[str], typer.Option("--allowed-origin", help="repeat for each origin")],
    identity_key: Annotated[str | None, typer.Option("--identity-key", envvar="HELPLINE_IDENTITY_KEY")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a deployment (a website channel) routed to a queue."""
    deployment = run(
        lambda: _with_accounts(
            database_url, lambda a: a.create_deployment(key, queue, allowed_origin, identity_key=identity_key)
        )
    )
    typer.echo(f"created deployment {deployment.key} ({deployment.id})")


@deployments_app.command("list")
def deployments_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the deployments: queue and allowed origins."""

    async def action(accounts: Any) -> list[dict[str, Any]]:
        names = {q.id: q.name for q in await accounts.queues()}
        return [{**d.public(), "queue": names.get(d.queue_id, d.queue_id)} for d in await accounts.deployments()]

    deployments = run(lambda: _with_accounts(database_url, action))
    _show(deployments, ["key", "queue", "allowed_origins", "retention_days", "verified_identities", "id"], as_json)


@deployments_app.command("update")
def deployments_update(
    key: str,
    allowed_origin: Annotated[
        list[str] | None, typer.Option("--allowed-origin", help="the new set of allowed origins; repeat for each")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="route new conversations to this queue (name)")] = None,
    retention_days: Annotated[
        int | None,
        typer.Option("--retention-days", min=1, max=36500, help="remove conversations idle this many days"),
    ] = None,
    keep_forever: Annotated[bool, typer.Option("--keep-forever", help="no retention limit (the default)")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Change a deployment's allowed origins (the whole list), its queue or its retention."""
    if retention_days is not None and keep_forever:
        fail("--retention-days and --keep-forever contradict each other")
    origins = _checked_origins(allowed_origin) if allowed_origin is not None else None

    async def action(accounts: Any) -> Any:
        deployment = await accounts.deployment_keyed(key)
        changes: dict[str, Any] = {}
        if origins is not None:
            changes["allowed_origins"] = origins
        if queue is not None:
            changes["queue_id"] = (await accounts.queue_named(queue)).id
        if retention_days is not None or keep_forever:
            changes["retention_days"] = retention_days
        return await accounts.update_deployment(deployment.id, changes)

    deployment = run(lambda: _with_accounts(database_url, action))
    kept = f"{deployment.retention_days} days" if deployment.retention_days else "for ever"
    typer.echo(
        f"updated deployment {deployment.key}: origins {', '.join(deployment.allowed_origins)}; "
        f"conversations kept {kept}"
    )


@customers_app.command("erase")
def customers_erase(
    customer_id: str,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove one customer's conversations and personal data; an audit entry (without content) remains."""

    async def work() -> dict[str, Any]:
        from helpline.domain.retention import Retention
        from helpline.store import open_store
        from helpline.store.attachments import choose_blobs

        settings = Settings.from_env(database_url=database_url)
        # Never migrates here: on a schema that is behind, erasure refuses rather than leave data behind.
        store = await open_store(settings.database_url, migrate=False)
        try:
            blobs = choose_blobs(settings.database_url, settings.attachment_storage, settings.attachment_dir)
            return await Retention(store, blobs, settings).erase_customer(customer_id, requested_by="cli")
        finally:
            await store.close()

    audit = run(work)
    typer.echo(
        f"erased customer {customer_id}: {audit['conversations']} conversations, {audit['events']} events, "
        f"{audit['attachments']} attachments (audit entry {audit['id']})"
    )


def _checked_origins(origins: list[str]) -> list[str]:
    import re

    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            fail(f"{origin!r} is not an origin (scheme://host[:port], no path)")
    return list(dict.fromkeys(origins))


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    """Rows as JSON, or as an aligned table of the named columns (lists joined with commas)."""
    import json

    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return

    def cell(value: Any) -> str:
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value) or "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    table = [columns, *([cell(row.get(c)) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


async def _with_webhooks(database_url: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    from helpline.bus.memory import MemoryBus
    from helpline.domain.webhooks import Webhooks
    from helpline.store import open_store

    # Running servers pick the change up within seconds (they reload their subscriptions regularly).
    settings = Settings.from_env(database_url=database_url)
    store = await open_store(settings.database_url, migrate=True)
    try:
        return await action(Webhooks(store, MemoryBus(), settings))
    finally:
        await store.close()


@webhooks_app.command("create")
def webhooks_create(
    url: str,
    event: Annotated[list[str], typer.Option("--event", "-e", help="an event type to send; repeat, or '*'")],
    disabled: Annotated[bool, typer.Option("--disabled", help="register it without sending yet")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a webhook endpoint; prints its signing secret (shown only once)."""
    hook = run(lambda: _with_webhooks(database_url, lambda w: w.create(url, event, enabled=not disabled)))
    typer.echo(f"created webhook {hook['id']} → {hook['url']} ({', '.join(hook['events'])})")
    typer.echo(f"signing secret (shown only now): {hook['secret']}")


@webhooks_app.command("list")
def webhooks_list(database_url: DatabaseUrl = None) -> None:
    """List webhook endpoints with their state and pending deliveries."""
    hooks = run(lambda: _with_webhooks(database_url, lambda w: w.list()))
    for hook in hooks:
        state = "paused" if hook["paused"] else ("enabled" if hook["enabled"] else "disabled")
        typer.echo(f"{hook['id']}  {state:8}  pending={hook['pending']:<5} {hook['url']}  {','.join(hook['events'])}")


@api_keys_app.command("create")
def api_keys_create(
    name: str,
    permission: Annotated[list[str], typer.Option("--permission", "-p", help="repeat for each permission")],
    user: Annotated[str | None, typer.Option("--user", help="the key acts as this staff user (a bot)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key; prints the key (shown only once: store it now)."""
    created = run(lambda: _with_accounts(database_url, lambda a: a.api_keys.create(name, permission, username=user)))
    acting = f", acting as {user}" if user else ""
    typer.echo(f"created API key {created['name']} ({created['id']}) with {', '.join(created['permissions'])}{acting}")
    typer.echo(f"key (shown only now): {created['key']}")


@api_keys_app.command("revoke")
def api_keys_revoke(name: str, database_url: DatabaseUrl = None) -> None:
    """Revoke an API key by name (running servers refuse it within seconds; at once through the API)."""
    revoked = run(lambda: _with_accounts(database_url, lambda a: a.api_keys.revoke(name=name)))
    typer.echo(f"revoked API key {revoked['name']} ({revoked['id']})")


@api_keys_app.command("list")
def api_keys_list(database_url: DatabaseUrl = None) -> None:
    """List API keys (never the keys themselves)."""
    keys = run(lambda: _with_accounts(database_url, lambda a: a.api_keys.list()))
    for key in keys:
        state = "revoked" if key["revoked_at"] else "active"
        used = key["last_used_at"] or "never used"
        typer.echo(f"{key['name']}  {key['prefix']}…  {state}  {','.join(key['permissions'])}  last used: {used}")


@app.command()
def doctor(
    url: str,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    idle_seconds: Annotated[
        float, typer.Option("--idle-seconds", help="also test a silent stream this long (finds idle timeouts)")
    ] = 0.0,
) -> None:
    """Diagnose the network path to a Helpline server: buffering, rewriting, TLS inspection, idle cuts."""
    import json

    from helpline import doctor as doctor_module

    checks, verdict = doctor_module.examine(url, idle_seconds=idle_seconds)
    if as_json:
        typer.echo(
            json.dumps({"url": url, "verdict": verdict.public(), "checks": doctor_module.as_json(checks)}, indent=2)
        )
    else:
        marks = {"ok": "✔", "warn": "!", "fail": "✘"}
        for check in checks:
            typer.echo(f"{marks[check.status]} {check.name}: {check.detail}")
            if check.advice and check.status != "ok":
                typer.echo(f"    → {check.advice}")
        typer.echo(f"verdict: {verdict.name}: {verdict.title}")
        if verdict.severity != "ok":
            typer.echo(f"    → {verdict.advice}")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def main() -> None:
    app()


__all__ = ["DEFAULT_DATABASE_URL", "app", "main"]
