"""Simulated customer journeys: seeded, deterministic touchpoints and the moments they should raise."""

from motwatch.simulation.generator import (
    KINDS,
    FailureRates,
    Simulation,
    SimulationConfig,
    Truth,
    iter_lines,
    simulate,
)

__all__ = ["KINDS", "FailureRates", "Simulation", "SimulationConfig", "Truth", "iter_lines", "simulate"]
