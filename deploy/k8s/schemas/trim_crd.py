"""Vendor one CRD's schema for the manifest tests: `python trim_crd.py CRD.yaml SOURCE > kind.json`.

Keeps only the served version's openAPIV3Schema, without descriptions (they are most of a CRD's bytes),
and records where it came from in `$comment`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        # "description" is an annotation, except where it names a property (e.g. a field called description).
        return {
            k: (
                strip_descriptions(v)
                if k != "properties"
                else {p: strip_descriptions(s) for p, s in v.items()}
            )
            for k, v in node.items()
            if k != "description"
        }
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def main(crd_path: str, source: str) -> None:
    crd = yaml.safe_load(Path(crd_path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = strip_descriptions(version["schema"]["openAPIV3Schema"])
    out = {
        "$comment": f"{crd['spec']['group']}/{version['name']} {crd['spec']['names']['kind']}; from {source}",
        "x-kkmp-group-version": f"{crd['spec']['group']}/{version['name']}",
        "x-kkmp-kind": crd["spec"]["names"]["kind"],
        **schema,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
