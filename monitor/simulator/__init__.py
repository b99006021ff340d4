"""A realistic fake DLI service: the backbone of the demo, the tests and the benchmarks."""

from monitor.simulator.api import ApiVariant
from monitor.simulator.app import Faults, Simulator, make_app, running_simulator
from monitor.simulator.world import Lifecycle, TruthEntry, World

__all__ = [
    "ApiVariant",
    "Faults",
    "Lifecycle",
    "Simulator",
    "TruthEntry",
    "World",
    "make_app",
    "running_simulator",
]
