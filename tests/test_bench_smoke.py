"""The benchmark script runs (a small smoke run; the real one is `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camstream.config import Config

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.spark


def test_benchmark_smoke_run(cfg: Config, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick",
         "--scenarios", "raw,accuracy,presets,drain,uneven", "--out", str(tmp_path)],
        env={**os.environ, "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[bench" in out.stdout  # progress is shown
    results = json.loads((tmp_path / "results.json").read_text())
    for preset in ("faithful", "fast"):
        assert results["raw_fps"][preset]["median"] > 0
        assert results["drain_fps"][preset]["median"] > 0
        assert results["accuracy"][preset]["recall"] > 0.9
    assert "| raw OpenCV loop, fast (frames/s)" in out.stdout
    # The presets side by side (a quick run scores five frames: it runs, whatever its figures).
    presets = results["presets"]["presets"]
    assert list(presets) == ["faithful", "equalized", "fast"]
    for row in presets.values():
        assert row["sample video"]["recall"] == 1.0 and row["all"]["ms_per_frame_median"] > 0
    assert "| preset faithful: recall, false boxes per 100 frames" in out.stdout
    # The uneven-load shapes run (a quick run takes two: the figures come from `make
    # bench`), and every camera's frames came out in order.
    shapes = {item["shape"]: item for item in results["uneven"]}
    assert set(shapes) == {"uniform", "8 cameras on 4, uneven"}
    for item in shapes.values():
        assert item["received"] == item["frames"] and item["in_order"], item
        assert item["loop_fps"] > 0 and item["steady_fps"] > 0
    assert (tmp_path / "uneven_load.png").exists()
