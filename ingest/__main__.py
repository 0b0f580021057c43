"""``python -m ingest``: serve the edge with uvicorn on INGEST_HOST:INGEST_PORT.

Reads the settings once, configures logging, builds the app (the lifespan starts the Kafka producer,
the PostgreSQL pool, applying pending migrations, and the WHOOP client) and serves until SIGTERM,
then stops gracefully and exits 0 within ``infra.shutdown.STOP_GRACE_S``.
``python -m ingest admin-token LABEL SCOPES`` prints a new admin token once, with the
``INGEST_ADMIN_TOKENS`` item (its hash) to configure.
``python -m ingest erase USER [--yes]`` erases a member (``ingest/erase_command.py``).
``python -m ingest vault rotate`` moves the stored WHOOP tokens to the first key of
``TOKEN_VAULT_KEYS`` (``ingest/vault_rotation.py``).
Unless ``PIPELINE_ENV=dev``, the server refuses to start on a public development secret
(``infra/pipeline_env.py``), before it connects anywhere.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.types import ASGIApp

from infra import http_server
from infra.logs import LogSettings, configure_logging
from infra.pipeline_env import EXIT_REFUSED, PipelineEnvSettings, dev_secret_problems, refusal_line
from ingest import erase_command, vault_rotation
from ingest.app import create_app
from ingest.settings import IngestSettings, Settings

__all__ = ["main", "server_config"]


def server_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """uvicorn's config of the edge: INGEST_HOST:INGEST_PORT under the INGEST_* HTTP limits."""
    own = settings.ingest
    return http_server.server_config(
        app, host=own.host, port=own.port, limits=own.http_limits(), lifespan="on"
    )


def _admin_token(label: str, scopes: str) -> int:
    token, item = IngestSettings.new_admin_token(label, scopes)  # refuses a bad label or scope first
    sys.stdout.write(f"token (shown once): {token}\nINGEST_ADMIN_TOKENS item: {item}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["admin-token"]:
        if len(args) != 3:
            sys.stderr.write("usage: python -m ingest admin-token LABEL SCOPE[+SCOPE...]\n")
            return 2
        return _admin_token(args[1], args[2])
    if args[:1] == ["erase"]:
        return erase_command.command(args[1:])
    if args[:1] == ["vault"]:
        if args[1:] != ["rotate"]:
            sys.stderr.write(vault_rotation.USAGE)
            return 2
        return vault_rotation.command()
    settings = Settings.from_env()
    if problems := dev_secret_problems(
        PipelineEnvSettings(),
        token_vault_keys=settings.vault.token_vault_keys,
        whoop_client_secret=settings.whoop.whoop_client_secret,
        whoop_client_secret_previous=settings.ingest.whoop_client_secret_previous,
    ):
        sys.stderr.write(refusal_line("python -m ingest", problems))
        return EXIT_REFUSED
    logs = LogSettings()
    configure_logging("ingest", logs.log_format, level=settings.ingest.log_level, records=logs.log_records)
    return http_server.serve(server_config(settings, create_app(settings)))


if __name__ == "__main__":
    sys.exit(main())
