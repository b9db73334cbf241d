"""The ``helpline`` command line (docs/protocol.md "Command line").

Every option also reads ``HELPLINE_<OPTION>`` from the environment; flags win over the environment.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
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
    from helpline.domain.accounts import Accounts
    from helpline.store import open_store

    settings = Settings.from_env(database_url=database_url)
    store = await open_store(settings.database_url, migrate=True)
    try:
        return await action(Accounts(store, settings))
    finally:
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
    from helpline.runner import build_server

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    try:
        settings = Settings.from_env(database_url=database_url, bus_url=bus_url, demo=demo or None)
        if settings.demo and not settings.public_url:
            settings = Settings.from_env(database_url=database_url, bus_url=bus_url, demo=True, public_url=url)
        settings = settings.checked()
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


@queues_app.command("create")
def queues_create(name: str, database_url: DatabaseUrl = None) -> None:
    """Create a queue."""
    queue = run(lambda: _with_accounts(database_url, lambda a: a.create_queue(name)))
    typer.echo(f"created queue {queue.name} ({queue.id})")


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

    checks = doctor_module.diagnose(url, idle_seconds=idle_seconds)
    if as_json:
        typer.echo(json.dumps({"url": url, "checks": doctor_module.as_json(checks)}, indent=2))
    else:
        marks = {"ok": "✔", "warn": "!", "fail": "✘"}
        for check in checks:
            typer.echo(f"{marks[check.status]} {check.name}: {check.detail}")
            if check.advice and check.status != "ok":
                typer.echo(f"    → {check.advice}")
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


def main() -> None:
    app()


__all__ = ["DEFAULT_DATABASE_URL", "app", "main"]
