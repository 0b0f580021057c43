"""``python -m simulator``: serve the WHOOP simulator with uvicorn on SIMULATOR_HOST:SIMULATOR_PORT."""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp

from infra import http_server
from infra.logs import LogSettings, configure_logging
from infra.settings import WhoopAppSettings
from simulator.app import create_app
from simulator.settings import SimulatorSettings

logger = logging.getLogger("simulator")


def server_config(app: ASGIApp, settings: SimulatorSettings) -> uvicorn.Config:
    """uvicorn's config of the simulator: SIMULATOR_HOST:SIMULATOR_PORT under the SIMULATOR_* HTTP limits."""
    return http_server.server_config(
        app, host=settings.host, port=settings.port, limits=settings.http_limits(), log_level="warning"
    )


def main() -> int:
    """Read the settings once, configure logging, build the app and serve it; 0 once stopped."""
    settings = SimulatorSettings()
    app_settings = WhoopAppSettings()
    logs = LogSettings()
    configure_logging("simulator", logs.log_format, level=settings.log_level, records=logs.log_records)
    app = create_app(settings, app_settings)
    logger.info(
        "WHOOP simulator on http://%s:%s client_id=%s members=%s days=%s seed=%s",
        settings.host,
        settings.port,
        app_settings.whoop_client_id,
        settings.members,
        settings.days,
        settings.seed,
    )
    return http_server.serve(server_config(app, settings))


if __name__ == "__main__":
    raise SystemExit(main())
