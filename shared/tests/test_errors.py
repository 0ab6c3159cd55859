"""The error handlers' 405: `Allow` lists every method the path's resource is served with (RFC 9110),
not only those of the first route Starlette matched. No I/O."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from kkmp_shared.errors import install_error_handlers

pytestmark = pytest.mark.unit


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    things = APIRouter()

    # One route per method, as the services declare them: Starlette would name only GET in a 405.
    @things.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.patch("/things/{thing_id}")
    async def patch_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.delete("/things/{thing_id}")
    async def delete_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.get("/things")
    async def list_things() -> list[str]:
        return []

    @things.post("/things")
    async def create_thing() -> dict[str, str]:
        return {"id": "new"}

    @app.post("/things/batch")
    async def create_things() -> dict[str, int]:
        return {"created": 0}

    # A literal segment after a parameter: .../parts/batch is its own resource, not .../parts/{part_id}.
    @app.post("/things/{thing_id}/parts/batch")
    async def add_parts(thing_id: str) -> dict[str, int]:
        return {"added": 0}

    @app.get("/things/{thing_id}/parts/{part_id}")
    async def get_part(thing_id: str, part_id: str) -> dict[str, str]:
        return {"id": part_id}

    app.include_router(things)
    return app


async def _request(method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/things/abc", "DELETE, GET, PATCH"),
        ("PUT", "/things/abc", "DELETE, GET, PATCH"),
        ("DELETE", "/things", "GET, POST"),
        # /things/batch is a resource of its own (POST), though /things/{thing_id} also matches it.
        ("PUT", "/things/batch", "POST"),
        ("OPTIONS", "/things/abc/parts/batch", "POST"),
        ("OPTIONS", "/things/abc/parts/p1", "GET"),
    ],
)
async def test_a_405_allows_the_methods_of_every_route_at_the_path(
    method: str, path: str, allow: str
) -> None:
    response = await _request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/things/abc"),
        ("POST", "/things"),
        ("POST", "/things/batch"),
        ("POST", "/things/abc/parts/batch"),
        ("GET", "/things/abc/parts/p1"),
    ],
)
async def test_every_allowed_method_is_served(method: str, path: str) -> None:
    assert (await _request(method, path)).status_code == 200


async def test_an_unknown_path_is_a_404_without_allow() -> None:
    response = await _request("PUT", "/nothing/here")
    assert response.status_code == 404
    assert "allow" not in response.headers
    assert response.json()["error"]["code"] == "not_found"
