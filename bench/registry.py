"""The benchmark's scenarios, registered by name, and what they share while they run.

A scenario is a function of a `Context` that measures one thing and writes its figures
into `ctx.results`. `bench/scenarios.py` registers them with `@scenario(...)` in the order
they run; `bench/run.py` picks them by name.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STARTED = time.monotonic()


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """A figure measured in rounds: median, min, max and how many (nothing left out)."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def say(message: str) -> None:
    """Progress, with the seconds since the benchmark started."""
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


@dataclass
class Context:
    """What every scenario gets: the run's options, the results so far, a shared stack."""

    quick: bool
    repeats: int
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    results: dict[str, Any] = field(default_factory=dict)
    _stack: Any = None

    @property
    def stack(self) -> Any:
        """A broker and a Spark session, started by the first scenario that needs them."""
        if self._stack is None:
            from stack import Stack

            self._stack = Stack.start(self.cores)
        return self._stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def machine(self) -> dict[str, Any]:
        import cv2

        return {
            "cpus": self.cores,
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "platform": platform.platform(),
        }


@dataclass(frozen=True)
class Scenario:
    name: str
    help: str
    run: Callable[[Context], None]


SCENARIOS: dict[str, Scenario] = {}


ScenarioFunction = Callable[[Context], None]


def scenario(name: str, help: str) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register a scenario function under `name` (they run in registration order)."""

    def register(func: ScenarioFunction) -> ScenarioFunction:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS[name] = Scenario(name, help, func)
        return func

    return register
