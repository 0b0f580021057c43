"""Units, defined once: every conversion from WHOOP's units to ours lives here.

Our canonical records use: energy in kcal, durations in milliseconds, percentages 0-100, heart
rate in bpm, HRV RMSSD in milliseconds, strain on WHOOP's 0-21 scale, distance and altitude in
metres, temperature in °C. WHOOP sends energy in kJ; everything else already matches.
"""

from __future__ import annotations

__all__ = [
    "KJ_PER_KCAL",
    "STRAIN_MAX",
    "kcal_from_kj",
]

KJ_PER_KCAL = 4.184  # the thermochemical calorie
STRAIN_MAX = 21.0


def kcal_from_kj(kilojoule: float) -> float:
    """Kilocalories from kilojoules (WHOOP's ``kilojoule`` fields are kJ, not kcal)."""
    return kilojoule / KJ_PER_KCAL
