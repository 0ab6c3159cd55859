"""Operator commands of reporting, callable without the HTTP API.

    python -m reporting.cli rebuild     # replay the event store into a clean read model

`rebuild_read_models()` is what the `kkmp` CLI calls. It works on the database the settings name
(`REPORTING_DATABASE_URL`, ...), migrates it first, and needs no broker: a health level that changes
in the rebuild is staged in the outbox, and the service's relay publishes it when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from kkmp_shared.bootstrap import build_platform

from reporting.adapters import orm
from reporting.bootstrap import MIGRATIONS
from reporting.service_layer.context import build_context
from reporting.service_layer.rebuild import rebuild
from reporting.settings import ReportingSettings


async def rebuild_read_models(settings: ReportingSettings | None = None) -> dict[str, Any]:
    settings = settings or ReportingSettings()
    platform = build_platform(settings, orm.messaging)
    try:
        await platform.db.migrate(MIGRATIONS)
        ctx = build_context(settings, platform)
        result = await rebuild(ctx.projector, ctx.refresher)
        return dict(result.__dict__)
    finally:
        await platform.db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reporting.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rebuild", help="replay the event store into a clean read model")
    args = parser.parse_args(argv)
    if args.command == "rebuild":
        print(json.dumps(asyncio.run(rebuild_read_models()), indent=2))


if __name__ == "__main__":
    main()
