"""The benchmark script runs (a small smoke run; the real one is `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camstream.config import Config
from helpers import bench_module

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.spark


def test_benchmark_smoke_run(cfg: Config, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick",
         "--scenarios", "presets,same-work,pipelines", "--out", str(tmp_path)],
        env={**os.environ, "KAFKA_BOOTSTRAP": cfg.kafka_bootstrap},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[bench" in out.stdout  # progress is shown
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["repeats"] == 1 and results["commit"]
    # The presets side by side (a quick run scores five frames: it runs, whatever its figures).
    presets = results["presets"]["presets"]
    assert list(presets) == ["faithful", "equalized", "fast"]
    for row in presets.values():
        assert row["sample video"]["recall"] == 1.0 and row["all"]["ms_per_frame_median"] > 0
    # The same frames through the job and through its path outside Spark: every frame out,
    # each camera in order; the plain loop as a second row.
    (same,) = results["same_work"]
    assert same["in_order"] and same["job_runs"][0]["written"] == same["frames"]
    assert same["job_fps"]["median"] > 0 and same["baseline_fps"]["median"] > 0
    assert same["ratio"]["median"] == pytest.approx(
        same["job_fps"]["median"] / same["baseline_fps"]["median"], rel=0.01
    )
    assert same["naive_loop_fps"]["median"] > 0
    # The pipelines side by side (a quick run: micro-batches and the consumer group), each
    # measured: every frame of a burst out, in order per camera, none lost under load.
    pipelines = results["pipelines"]
    modes = ["micro-batch", "consumer group"]
    assert list(pipelines["capacity"]["fast"]) == modes
    for mode in modes:
        (burst,) = pipelines["capacity"]["fast"][mode]["runs"]
        assert burst["written"] == burst["frames"] and burst["in_order"], (mode, burst)
        (load,) = pipelines["delay"]["fast"][mode]["runs"]
        assert load["lost"] == 0 and load["delay_ms_p50"] > 0, (mode, load)
    # The documents' tables render from these results, figures in place.
    docs_tables = bench_module("docs_tables")
    table = docs_tables.pipelines_table(results)
    assert "A quick run" in table
    for mode in modes:
        capacity = pipelines["capacity"]["fast"][mode]["fps"]["median"]
        assert f"| {mode} | {capacity:,.1f} |" in table
    assert f"{same['ratio']['median']:.2f}" in docs_tables.same_work_table(results)
    assert "## pipelines" in out.stdout and (tmp_path / "pipelines.png").exists()


def test_a_partial_or_quick_run_never_overwrites_the_whole_results() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "--out DIR" in out.stderr
