"""The WHOOP API v2 simulator: OAuth, data API, quota, signed webhooks, faults and a control API.

A faithful, fast, scriptable stand-in for the WHOOP cloud (``whoop-api-v2.md`` §13). Build it with
:func:`create_app`; run it with ``python -m simulator``; see ``docs/simulator.md``.
A stage like the others: imports ``schemas`` and ``infra`` only, never another stage.
"""

from simulator.app import create_app
from simulator.settings import SimulatorSettings

__all__ = ["SimulatorSettings", "create_app"]
