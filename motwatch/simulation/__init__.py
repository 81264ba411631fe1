"""Simulated customer journeys: seeded, deterministic touchpoints and the moments they should raise."""

from motwatch.core.moments import KINDS
from motwatch.simulation.generator import iter_lines, simulate
from motwatch.simulation.model import FailureRates, Simulation, SimulationConfig, Truth

__all__ = ["KINDS", "FailureRates", "Simulation", "SimulationConfig", "Truth", "iter_lines", "simulate"]
