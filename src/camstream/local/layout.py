"""A local cluster's layout (its settings, but for its folder) saved as JSON in its folder.

So that `stop` and `status` find the same nodes as `start` made, whatever options they get.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_layout(cls: type[T], directory: Path, name: str) -> T | None:
    """A dataclass saved by `save_layout` in `directory`, or None if there is none."""
    try:
        saved = json.loads((directory / name).read_text())
        # `cls` is a dataclass whose first field is its directory: not a type a checker sees.
        return cls(directory, **saved)  # type: ignore[call-arg]
    except (OSError, ValueError, TypeError):
        return None


def save_layout(obj: Any, name: str) -> None:
    """A local cluster's settings (all fields but its folder) as JSON in its folder."""
    obj.directory.mkdir(parents=True, exist_ok=True)
    layout = {k: v for k, v in dataclasses.asdict(obj).items() if k != "directory"}
    (obj.directory / name).write_text(json.dumps(layout, indent=2) + "\n")
