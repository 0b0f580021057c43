"""Offline validators of the deployment files: built-in Kubernetes kinds, Strimzi kinds, the compose file.

- Built-in kinds: ``kubernetes-validate`` with the schemas it ships for ``K8S_VERSION``, in strict mode
  (an unknown field is an error, as ``kubectl apply --validate=strict`` makes it).
- Strimzi kinds: the OpenAPI v3 schema of the matching CRD in ``deploy/k8s/crds/`` (copied from Strimzi),
  checked with ``jsonschema``; every object schema that lists its properties and does not preserve
  unknown fields is closed (``additionalProperties: false``), as the API server prunes or, in strict
  field validation, refuses what the schema does not name.
- Compose: the Compose Specification's JSON Schema in ``deploy/compose-spec/``.
Each returns the list of problems (empty: valid), so a test can show both a pass and a failure.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from deploy.config_doc import SECTIONS, variables
from deploy.paths import REPO_ROOT

__all__ = [
    "CRD_DIR",
    "K8S_VERSION",
    "STRIMZI_GROUP",
    "compose_problems",
    "kubernetes_problems",
    "load",
    "problems",
    "settings_problems",
    "strimzi_problems",
    "unknown_variables",
]

K8S_VERSION = "1.34.0"
STRIMZI_GROUP = "kafka.strimzi.io"
CRD_DIR = REPO_ROOT / "deploy" / "k8s" / "crds"
COMPOSE_SCHEMA = REPO_ROOT / "deploy" / "compose-spec" / "compose-spec.json"
PENDING_VARIABLES: frozenset[str] = frozenset()

Resource = dict[str, Any]


def _closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        open_ended = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@functools.cache
def _strimzi_schemas() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            validators[(api_version, crd["spec"]["names"]["kind"])] = jsonschema.Draft7Validator(schema)
    return validators


def _messages(errors: Any) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in errors]


def strimzi_problems(resource: Resource) -> list[str]:
    """Problems of one Strimzi resource against its CRD's schema (an unknown apiVersion/kind is one)."""
    validator = _strimzi_schemas().get((resource.get("apiVersion", ""), resource.get("kind", "")))
    if validator is None:
        return [f"no Strimzi CRD for {resource.get('apiVersion')} {resource.get('kind')}"]
    return _messages(validator.iter_errors(resource))


def kubernetes_problems(resource: Resource) -> list[str]:
    """Problems of one built-in resource against the Kubernetes ``K8S_VERSION`` schema (strict)."""
    try:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"$.{'.'.join(str(p) for p in error.path)}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    return []


def problems(resource: Resource) -> list[str]:
    """Problems of any resource of ``deploy/k8s``: Strimzi kinds by CRD, the rest by Kubernetes schema."""
    if str(resource.get("apiVersion", "")).startswith(STRIMZI_GROUP + "/"):
        return strimzi_problems(resource)
    return kubernetes_problems(resource)


@functools.cache
def _compose_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(COMPOSE_SCHEMA.read_text()))


def compose_problems(document: Any) -> list[str]:
    """Problems of a loaded compose file against the Compose Specification's schema."""
    return _messages(_compose_validator().iter_errors(document))


def load(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def unknown_variables(names: set[str]) -> set[str]:
    """The names no settings class reads (a typo there is a setting silently left at its default)."""
    known = {v.name for _, classes in SECTIONS for settings in classes for v in variables(settings)}
    return names - known - PENDING_VARIABLES


def settings_problems(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What every settings class says of ``environment`` (e.g. a port that is not a number), by class."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    found = []
    for _, classes in SECTIONS:
        for settings in classes:
            try:
                settings()
            except ValidationError as error:
                found.append(f"{settings.__name__}: {error}")
    return found
