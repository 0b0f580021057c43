"""``PIPELINE_ENV``: whether a process may run on the public development secrets.

The repository ships public development values so that ``make run`` and the tests work on a fresh
machine: the vault key ``DEV_VAULT_KEYS`` (``infra/vault.py``), the default of ``TOKEN_VAULT_KEYS``,
and the WHOOP client secret ``DEV_WHOOP_CLIENT_SECRET`` (``infra/settings.py``), the default of
``WHOOP_CLIENT_SECRET``. Anyone can read them: a production process using them would seal members'
WHOOP tokens under a public key and accept webhooks signed with a public secret.

``PIPELINE_ENV`` is ``production`` unless set. Every pipeline process (ingest, processors, the
projections and the query API, the edge, ``projections rebuild``, ``ingest vault rotate``) calls
:func:`dev_secret_problems` at start, before it connects anywhere, and when it returns problems
writes :func:`refusal_line` to stderr and exits :data:`EXIT_REFUSED`, unless ``PIPELINE_ENV=dev``.
``make run`` (``python -m deploy run``), the test harness and the benchmarks set ``PIPELINE_ENV=dev``.

- A process checks the secrets it *uses*, set or left at their default (the public value).
- A secret it does not use (``WHOOP_CLIENT_SECRET`` in the projections; both in the standalone query
  API) is checked only when *set* (:class:`SharedSecretsSettings`): an environment carrying a public
  value (a copy of ``deploy/env.example``) is a development one, yet no process is made to hold a
  secret it does not need.
- ``vault rotate`` accepts the development key as an *older* key (``sealing_key_only``): moving rows
  off it is how a deployment leaves it.
- The simulator is exempt: it is a development stand-in for WHOOP, never deployed, and its client
  secret must be whatever the pipeline under test uses.

Messages name variables, never values. :func:`dev_secret_problems` is pure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from infra.settings import DEV_WHOOP_CLIENT_SECRET, ServiceSettings
from infra.vault import Keyring, VaultError

__all__ = [
    "EXIT_REFUSED",
    "PipelineEnv",
    "PipelineEnvSettings",
    "SharedSecretsSettings",
    "dev_secret_problems",
    "refusal_line",
]

PipelineEnv = Literal["dev", "production"]
EXIT_REFUSED = 2
"""Exit status of a process that refuses to start (nothing was done)."""


class PipelineEnvSettings(ServiceSettings):
    """Which kind of deployment this is, read by every pipeline process."""

    pipeline_env: PipelineEnv = Field(
        default="production",
        description="'production': every pipeline process refuses to start with a public development "
        "secret (TOKEN_VAULT_KEYS, WHOOP_CLIENT_SECRET: their defaults); 'dev' allows them (make run, "
        "the tests and the benchmarks set it).",
    )


class SharedSecretsSettings(ServiceSettings):
    """``TOKEN_VAULT_KEYS`` and ``WHOOP_CLIENT_SECRET`` as set (None: unset), for the check of a process
    that does not use them; documented with their owners (``VaultSettings``, ``WhoopAppSettings``)."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    token_vault_keys: SecretStr | None = None
    whoop_client_secret: SecretStr | None = None


def _dev_key_ids(spec: str, sealing_key_only: bool) -> tuple[str, ...]:
    try:
        keyring = Keyring.parse(spec)
    except VaultError:  # a malformed keyring is its owner's error to report, not a public key
        return ()
    found = keyring.dev_key_ids
    return tuple(key_id for key_id in found if key_id == keyring.active) if sealing_key_only else found


def dev_secret_problems(
    settings: PipelineEnvSettings,
    *,
    token_vault_keys: SecretStr | None = None,
    whoop_client_secret: SecretStr | None = None,
    whoop_client_secret_previous: SecretStr | None = None,
    sealing_key_only: bool = False,
) -> list[str]:
    """One problem per variable that holds a public development value; none when ``PIPELINE_ENV=dev``.

    Pass the values the process will use (its settings' values, defaults included) or, for a process
    that uses neither, the values set in its environment (:class:`SharedSecretsSettings`); None skips
    a variable. ``sealing_key_only`` looks only at the first (sealing) key of ``TOKEN_VAULT_KEYS``.
    """
    if settings.pipeline_env == "dev":
        return []
    problems = []
    if token_vault_keys is not None and _dev_key_ids(token_vault_keys.get_secret_value(), sealing_key_only):
        problems.append(
            "TOKEN_VAULT_KEYS seals with the public development key (its first key)"
            if sealing_key_only
            else "TOKEN_VAULT_KEYS holds the public development key"
        )
    if whoop_client_secret is not None and whoop_client_secret.get_secret_value() == DEV_WHOOP_CLIENT_SECRET:
        problems.append("WHOOP_CLIENT_SECRET is the public development client secret")
    previous = whoop_client_secret_previous
    if previous is not None and previous.get_secret_value() == DEV_WHOOP_CLIENT_SECRET:
        # unlike an older vault key (which only opens old rows), a previous secret still verifies webhooks
        problems.append("WHOOP_CLIENT_SECRET_PREVIOUS is the public development client secret")
    return problems


def refusal_line(program: str, problems: list[str]) -> str:
    """The one line a refusing process writes to stderr (variables named, values never shown)."""
    return (
        f"{program}: refusing to start: {'; '.join(problems)}; set your own, "
        "or PIPELINE_ENV=dev on a development machine\n"
    )
