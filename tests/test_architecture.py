"""The anatomy of the five services, kept by reading their code (docs/architecture.md): use cases
neither build SQL nor know HTTP, nobody but the unit of work commits, and a bootstrap builds its
dependencies before the app instead of patching the app afterwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "inventory", "sourcing", "reporting", "notifications")


def modules(service: str, layer: str) -> list[Path]:
    return sorted((ROOT / "services" / service / service / layer).rglob("*.py"))


def imports(path: Path) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_import_neither_sql_builders_nor_http_models(service: str) -> None:
    offending = []
    for path in modules(service, "service_layer"):
        for module, names in imports(path):
            allowed_session_type = module == "sqlalchemy.ext.asyncio" and names == ["AsyncSession"]
            if (module.startswith("sqlalchemy") and not allowed_session_type) or (
                module.startswith(f"{service}.entrypoints") or module.startswith("fastapi")
            ):
                offending.append(f"{path.relative_to(ROOT)}: {module} {names}")
    assert offending == []


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_unit_of_work_commits(service: str) -> None:
    commits = []
    for path in sorted((ROOT / "services" / service / service).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "commit":
                commits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert commits == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_bootstrap_builds_the_platform_and_never_patches_the_app(service: str) -> None:
    tree = ast.parse((ROOT / "services" / service / service / "bootstrap.py").read_text())
    called = {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert {"build_platform", "create_service_app"} <= called
    assert "Outbox" not in called  # the platform's outbox is the only one
    patches = [
        ast.unparse(target)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute) and "state" in ast.unparse(target).split(".")
    ]
    assert patches == []
