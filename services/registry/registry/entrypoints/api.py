"""The registry's HTTP routes: thin adapters over the service layer, one router module per area
(`entrypoints/routes/`).

Each route states who may call it (a principal dependency), parses what the client sent into a
command, hands it to one use case (writes with the route's unit of work, reads with a read session)
and shapes the answer.
"""

from __future__ import annotations

from registry.entrypoints.routes import auth, cooperatives, potentials, regions, trainings, users

ROUTERS = [
    regions.router,
    auth.router,
    users.router,
    cooperatives.router,
    potentials.router,
    trainings.router,
]
