"""Schemathesis hooks of test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS): half of the
generated ids are ids that exist, so that fuzzing reaches the handlers behind the 404s.

`KKMP_FUZZ_IDS` holds a JSON object, parameter name → ids of real objects (made by the test).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KNOWN: dict[str, list[str]] = json.loads(os.environ.get("KKMP_FUZZ_IDS", "{}"))


def _with_known(values: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    if not isinstance(values, dict):
        return st.just(values)
    names = [name for name in values if name in KNOWN and KNOWN[name]]
    if not names:
        return st.just(values)
    known = st.fixed_dictionaries({name: st.sampled_from(KNOWN[name]) for name in names})
    return st.one_of(st.just(values), known.map(lambda chosen: {**values, **chosen}))


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    return _with_known(path_parameters)


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any]) -> Any:
    return _with_known(query)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    return _with_known(body)
