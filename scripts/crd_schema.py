"""A CustomResourceDefinition's openAPIV3Schema as a strict JSON Schema, for validating
the chart's custom resources offline (tests/unit/test_helm_chart.py):

    python -m scripts.crd_schema CRD.yaml VERSION > deploy/helm/crd-schemas/KIND-GROUP-VERSION.json

Strict as kubeconform's: an object that lists its properties accepts no others (a
misspelt field fails), unless the CRD says it keeps unknown fields.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(value) for value in node]
    return node


def schema_of(crd: dict, version: str) -> dict:
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = strict(served["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}  # checked by the API server, not the CRD
            return schema
    raise SystemExit(f"{crd['metadata']['name']} serves no version {version}")


if __name__ == "__main__":
    crd_path, wanted = sys.argv[1:3]
    with open(crd_path, encoding="utf-8") as stream:
        print(json.dumps(schema_of(yaml.safe_load(stream), wanted), indent=1, sort_keys=True))
