"""The `kkmp` command: run the platform, seed the demo city, migrate, manage users, keys, dead letters and
topology."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from kkmp_shared.db import Database

T = TypeVar("T")

app = typer.Typer(help="KKMP platform: run, seed and operate.", no_args_is_help=True)
users = typer.Typer(help="User accounts in the registry.", no_args_is_help=True)
dlq = typer.Typer(help="Dead-letter queues: inspect, replay, purge.", no_args_is_help=True)
keys = typer.Typer(help="The registry's token signing keys: list, rotate, prune.", no_args_is_help=True)
app.add_typer(users, name="users")
app.add_typer(keys, name="keys")
app.add_typer(dlq, name="dlq")
topology = typer.Typer(help="The broker's queues.", no_args_is_help=True)
app.add_typer(topology, name="topology")


@app.command()
def run(
    data_dir: Annotated[
        Path, typer.Option(envvar="KKMP_DATA_DIR", help="Where SQLite files and logs go")
    ] = Path("var"),
    demo: Annotated[
        bool, typer.Option("--demo/--no-demo", envvar="KKMP_DEMO", help="Seed the demo city")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed number of the demo data")] = 20251128,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services")] = None,
    port_base: Annotated[
        int, typer.Option(envvar="KKMP_PORT_BASE", help="Portal's port; the services take the next five")
    ] = 8000,
) -> None:
    """Start every service and the portal; seed the demo city on first start (demo mode).
    Ctrl-C, SIGTERM and SIGHUP stop them all."""
    from kkmp_cli.runner import run_platform

    raise typer.Exit(run_platform(data_dir=data_dir, demo=demo, seed=seed, only=only, port_base=port_base))


@app.command()
def seed(
    seed_number: Annotated[
        int, typer.Option("--seed", help="Seed number (same number, same city)")
    ] = 20251128,
    force: Annotated[bool, typer.Option(help="Seed even if cooperatives exist")] = False,
) -> None:
    """Seed the demo city through the running services' APIs."""
    from kkmp_cli.seed import seed_city, seed_if_empty

    if force:
        seed_city(seed_number)
    else:
        seed_if_empty(seed_number)


@app.command()
def migrate(
    service: Annotated[
        str, typer.Option("--service", help="A service's name, or `all` for every service with a database")
    ] = "all",
) -> None:
    """Migrate services' databases to the code's schema (a one-off job before replicas start)."""
    from kkmp_cli.migrate import migrate as run
    from kkmp_cli.migrate import migrated_services

    known = migrated_services()
    if service != "all" and service not in known:
        typer.echo(f"Unknown service {service!r}: one of {', '.join(known)} or all", err=True)
        raise typer.Exit(2)
    for name, url in run(known if service == "all" else [service]):
        typer.echo(f"{name}: at head ({url})")


def _keys_run(job: Callable[[Database], Awaitable[T]]) -> T:
    """Run `job` on the registry's database, as its settings name it (REGISTRY_DATABASE_URL, ...)."""
    import asyncio

    from kkmp_shared.db import Database
    from kkmp_shared.settings import ServiceSettings

    async def run() -> T:
        settings = ServiceSettings(service_name="registry", broker_enabled=False)  # the keys need no broker
        db = Database(settings.database_url, pool_size=1, pooler=settings.database_pooler)
        try:
            return await job(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@keys.command("list")
def keys_list() -> None:
    """The keys in the registry's store: which one signs, until when the others verify."""
    from kkmp_shared import clock
    from registry.adapters.keys import stored_keys

    now = clock.system_seconds()
    for key in _keys_run(stored_keys):
        if key.not_after is None:
            state = "signs"
        elif key.not_after > now:
            state = f"verifies for {int(key.not_after - now)} s more"
        else:
            state = "retired (prune deletes it)"
        typer.echo(f"{key.kid}  {state}")


@keys.command("rotate")
def keys_rotate(
    retire_after: Annotated[
        int,
        typer.Option(
            envvar="TOKEN_TTL_S",
            help="Seconds the old key keeps verifying: the registry's longest token lifetime (TOKEN_TTL_S)",
        ),
    ] = 3600,
    leeway: Annotated[
        int | None, typer.Option(help="Seconds more for clocks that disagree (default: a minute)")
    ] = None,
) -> None:
    """Add a new signing key to the registry's store: every replica signs with it from now on, and
    the old key verifies until the tokens it signed have expired (plus a minute for clocks)."""
    from registry.adapters.keys import CLOCK_LEEWAY_S, rotate

    grace = retire_after + (CLOCK_LEEWAY_S if leeway is None else leeway)
    kid, retired = _keys_run(lambda db: rotate(db, retire_after_s=grace))
    typer.echo(f"signing with {kid}")
    for old in retired:
        typer.echo(f"{old} verifies for {grace} s more")


@keys.command("prune")
def keys_prune() -> None:
    """Delete the keys that verify nothing any more."""
    from registry.adapters.keys import prune

    for kid in _keys_run(prune):
        typer.echo(f"deleted {kid}")


@users.command("create")
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, officer, coop_manager, supplier")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    cooperative_id: Annotated[str | None, typer.Option()] = None,
    supplier_id: Annotated[str | None, typer.Option()] = None,
    kecamatan: Annotated[list[str] | None, typer.Option(help="Officer scope (repeat)")] = None,
    admin_password: Annotated[
        str, typer.Option(envvar="KKMP_ADMIN_PASSWORD", prompt=True, hide_input=True)
    ] = "",
    registry_url: Annotated[str, typer.Option(envvar="REGISTRY_URL")] = "http://127.0.0.1:8001",
) -> None:
    """Create a user through the registry API (as admin)."""
    import httpx

    from kkmp_cli.seed import bearer, token

    with httpx.Client(timeout=30) as client:
        admin = token(client, registry_url, "admin", admin_password)
        body = {
            "username": username,
            "password": password,
            "role": role,
            "cooperative_id": cooperative_id,
            "supplier_id": supplier_id,
            "kecamatan_codes": kecamatan or [],
        }
        response = client.post(
            f"{registry_url}/users",
            json={k: v for k, v in body.items() if v is not None},
            headers=bearer(admin),
        )
    if response.status_code != 201:
        typer.echo(
            f"Failed ({response.status_code}): {response.json().get('error', {}).get('message')}", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"Created {role} {username} ({response.json()['id']})")


def _amqp() -> str:
    return os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


@dlq.command("list")
def dlq_list(
    node: Annotated[
        str | None,
        typer.Option(envvar="KKMP_RABBITMQ_NODE", help="rabbitmqctl node name (default: the machine's node)"),
    ] = None,
) -> None:
    """Dead-letter queues (of AMQP_URL's vhost) and how many messages wait in each."""
    from kkmp_cli.dlq import list_dlqs

    list_dlqs(_amqp(), node)


@dlq.command("show")
def dlq_show(queue: str, limit: Annotated[int, typer.Option()] = 10) -> None:
    """Show the messages of a dead-letter queue (they stay in it)."""
    from kkmp_cli.dlq import show

    show(_amqp(), queue, limit)


@dlq.command("replay")
def dlq_replay(queue: str, limit: Annotated[int, typer.Option()] = 1000) -> None:
    """Move messages back to the work queue they came from."""
    from kkmp_cli.dlq import replay

    replay(_amqp(), queue, limit)


@dlq.command("purge")
def dlq_purge(queue: str, yes: Annotated[bool, typer.Option("--yes")] = False) -> None:
    """Delete every message of a dead-letter queue."""
    from kkmp_cli.dlq import purge

    if not yes:
        typer.confirm(f"Delete every message in {queue}?", abort=True)
    purge(_amqp(), queue)


@topology.command("migrate")
def topology_migrate(
    amqp_url: Annotated[
        str, typer.Option(envvar="AMQP_URL", help="Broker (its vhost is migrated)")
    ] = "amqp://guest:guest@localhost:5672/",
    node: Annotated[
        str | None,
        typer.Option(envvar="KKMP_RABBITMQ_NODE", help="rabbitmqctl node name (default: the machine's node)"),
    ] = None,
    exchange: Annotated[str, typer.Option(envvar="EVENTS_EXCHANGE")] = "kkmp.events",
    delivery_limit: Annotated[int, typer.Option(envvar="DELIVERY_LIMIT", min=1)] = 10,
) -> None:
    """Convert classic work, dead-letter and retry queues to quorum queues, keeping every message.

    Stop the consumers first; safe to run again (after a crash midway, or when nothing is left to do).
    """
    from kkmp_cli.topology import migrate_topology

    migrate_topology(amqp_url, node=node, exchange=exchange, delivery_limit=delivery_limit)


if __name__ == "__main__":
    app()
