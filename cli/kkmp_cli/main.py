"""The `kkmp` command: run the platform, seed the demo city, manage users, dead letters and topology."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="KKMP platform: run, seed and operate.", no_args_is_help=True)
users = typer.Typer(help="User accounts in the registry.", no_args_is_help=True)
dlq = typer.Typer(help="Dead-letter queues: inspect, replay, purge.", no_args_is_help=True)
app.add_typer(users, name="users")
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
