"""``python -m ingest``: serve the edge with uvicorn on INGEST_HOST:INGEST_PORT.

Reads the settings once, configures logging, builds the app (the lifespan starts the Kafka producer,
the PostgreSQL pool, applying pending migrations, and the WHOOP client) and serves until SIGTERM.
``python -m ingest admin-token LABEL SCOPES`` prints a new admin token once, with the
``INGEST_ADMIN_TOKENS`` item (its hash) to configure.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from ingest.app import create_app
from ingest.settings import IngestSettings, Settings

__all__ = ["main"]


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
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.ingest.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.ingest.host,
        port=settings.ingest.port,
        access_log=False,
        log_config=None,
        lifespan="on",
        server_header=False,
        proxy_headers=False,  # we never use the client address; the hot path saves the middleware
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
