"""The subset of kustomize that ``deploy/k8s`` uses, rendered in Python for the offline tests.

There is no kustomize binary here (nor in CI), so the tests build each overlay themselves: ``resources``
(files, or folders holding a ``kustomization.yaml``), ``namespace``, ``replicas`` (name + count) and
``patches`` given as inline JSON 6902 operations (``replace``, ``add``, ``remove``) with a ``target`` of
kind and optional name. Any other field is refused (``UnsupportedError``), so an overlay cannot use a
feature these tests would silently ignore.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KUSTOMIZATION", "UnsupportedError", "apply_operation", "build", "load_documents"]

KUSTOMIZATION = "kustomization.yaml"
KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "replicas", "patches"}
SCALABLE = {"Deployment", "StatefulSet"}

Resource = dict[str, Any]


class UnsupportedError(ValueError):
    """A kustomization uses a field or patch these tests do not render."""


def load_documents(path: Path) -> list[Resource]:
    """The non-empty YAML documents of ``path``."""
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _segments(path: str) -> list[str]:
    if not path.startswith("/"):
        raise UnsupportedError(f"patch path {path!r} is not a JSON pointer")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _step(node: Any, segment: str) -> Any:
    return node[int(segment)] if isinstance(node, list) else node[segment]


def apply_operation(resource: Resource, operation: dict[str, Any]) -> None:
    """Apply one JSON 6902 ``replace``/``add``/``remove`` to ``resource`` in place (KeyError: no path)."""
    *parents, last = _segments(operation["path"])
    node: Any = resource
    for segment in parents:
        node = _step(node, segment)
    op = operation["op"]
    if op == "replace":
        _step(node, last)  # replace needs the target to exist
        node[int(last) if isinstance(node, list) else last] = operation["value"]
    elif op == "add" and isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), operation["value"])
    elif op == "add":
        node[last] = operation["value"]
    elif op == "remove":
        del node[int(last) if isinstance(node, list) else last]
    else:
        raise UnsupportedError(f"patch operation {op!r}")


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise UnsupportedError(f"patch target fields {sorted(unknown)}")
    name: str = resource["metadata"]["name"]
    return bool(resource["kind"] == target["kind"] and target.get("name", name) == name)


def _patch(resources: list[Resource], patch: dict[str, Any]) -> None:
    if set(patch) != {"target", "patch"}:
        raise UnsupportedError(f"patch fields {sorted(patch)}: only target + inline JSON 6902 ops")
    targets = [resource for resource in resources if _matches(resource, patch["target"])]
    if not targets:
        raise UnsupportedError(f"patch target {patch['target']} matches no resource")
    for resource in targets:
        for operation in yaml.safe_load(patch["patch"]):
            apply_operation(resource, operation)


def _scale(resources: list[Resource], name: str, count: int) -> None:
    found = [r for r in resources if r["kind"] in SCALABLE and r["metadata"]["name"] == name]
    if not found:
        raise UnsupportedError(f"replicas: no Deployment or StatefulSet named {name!r}")
    for resource in found:
        resource["spec"]["replicas"] = count


def build(folder: Path) -> list[Resource]:
    """The resources ``kustomize build folder`` gives, for the supported subset."""
    kustomization = yaml.safe_load((folder / KUSTOMIZATION).read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise UnsupportedError(f"{folder / KUSTOMIZATION}: fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        resources += build(path) if path.is_dir() else copy.deepcopy(load_documents(path))
    for item in kustomization.get("replicas", []):
        _scale(resources, item["name"], item["count"])
    for patch in kustomization.get("patches", []):
        _patch(resources, patch)
    if namespace := kustomization.get("namespace"):
        for resource in resources:
            resource["metadata"]["namespace"] = namespace
    return resources
