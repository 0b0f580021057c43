"""``python -m simulator``: serve the WHOOP simulator with uvicorn on SIMULATOR_HOST:SIMULATOR_PORT."""

from __future__ import annotations

import logging

import uvicorn

from infra.settings import WhoopAppSettings
from simulator.app import create_app
from simulator.settings import SimulatorSettings

logger = logging.getLogger("simulator")


def main() -> None:
    """Read the settings once, configure logging, build the app and serve it."""
    settings = SimulatorSettings()
    app_settings = WhoopAppSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
