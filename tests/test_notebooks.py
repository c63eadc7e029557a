"""The reference demo's three notebooks, executed for real against the broker and Spark."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import papermill
import pytest

from camstream.cameras.simulate import CameraSimulator
from camstream.config import Config
from camstream.core.contract import INPUT_HEADERS, OUTPUT_HEADERS, FrameMeta
from camstream.spark.job import build_query
from conftest import ARTIFACTS, consume, wait_until
from databricks_shim import HEADER, SEPARATOR, magic_command, run_notebook, split_cells

REPO = Path(__file__).resolve().parent.parent
PRODUCER_NB = REPO / "jupyter" / "VideoCaptureToKafka.ipynb"
CONSUMER_NB = REPO / "jupyter" / "KafkaConsumerProcessed.ipynb"
DATABRICKS_NB = REPO / "databricks" / "KafkaStructStream.py"


def execute(notebook: Path, output: Path, **parameters: Any) -> dict[str, Any]:
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(notebook.parent),
        execution_timeout=300,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / output.name).write_text(output.read_text())  # kept for a look afterwards
    return json.loads(output.read_text())


def outputs(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [out for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell["outputs"]]


@pytest.mark.parametrize("path", [PRODUCER_NB, CONSUMER_NB])
def test_notebooks_are_committed_thin_and_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code_cells), (
        f"{path.name} has outputs: clear them before committing"
    )
    assert "parameters" in code_cells[0]["metadata"].get("tags", [])
    assert "kafkabrokers" in "".join(code_cells[0]["source"])
    # Thin: parameters, an import from camstream, one call.
    assert len(code_cells) <= 3
    assert "from camstream" in "".join(code_cells[1]["source"])


def test_producer_notebook_publishes_frames(cfg: Config, tmp_path: Path) -> None:
    nb = execute(
        PRODUCER_NB,
        tmp_path / "VideoCaptureToKafka.out.ipynb",
        kafkabrokers=cfg.kafka_bootstrap,
        topic=cfg.input_topic,
        camera_id="nb-cam",
        fps=25,
        max_frames=12,
    )
    records = consume(cfg, cfg.input_topic, 12)
    assert len(records) == 12
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.seq for m in metas] == list(range(12))
    assert all([n for n, _ in r.headers] == list(INPUT_HEADERS) for r in records)
    assert {r.key for r in records} == {b"nb-cam"}
    shown = outputs(nb)
    assert any("image/jpeg" in out.get("data", {}) for out in shown), "no preview image"
    text = json.dumps(shown)
    assert "12 frames sent" in text and "frames/s" in text


@pytest.mark.spark
def test_consumer_notebook_shows_annotated_frames_while_the_job_runs(
    spark, cfg: Config, tmp_path: Path
) -> None:
    query = build_query(spark, cfg.replace(checkpoint_location=str(tmp_path / "ckpt")))
    try:
        CameraSimulator(cfg, cameras=2, fps=10).run(max_frames=5)
        consume(cfg, cfg.output_topic, 10, timeout_s=120)
        nb = execute(
            CONSUMER_NB,
            tmp_path / "KafkaConsumerProcessed.out.ipynb",
            kafkabrokers=cfg.kafka_bootstrap,
            topic=cfg.output_topic,
            max_frames=10,
            from_beginning=True,
        )
    finally:
        query.stop()
    shown = outputs(nb)
    images = [out for out in shown if "image/jpeg" in out.get("data", {})]
    # One image per camera, updated in place: not one output per frame.
    assert len(images) == 2
    captions = [
        "".join(out["data"]["text/html"]) for out in shown if "text/html" in out.get("data", {})
    ]
    assert len(captions) == 2
    assert all("delay" in c and " ms" in c and "faces" in c for c in captions)
    assert "10 frames from 2 cameras" in json.dumps(shown)


def test_databricks_notebook_format() -> None:
    source = DATABRICKS_NB.read_text()
    assert source.startswith(HEADER + "\n")
    cells = split_cells(source)
    assert source.count("\n" + SEPARATOR + "\n") == len(cells) - 1
    magics = [magic_command(cell) for cell in cells]
    assert magics[0] is not None and magics[0].startswith("%md")
    assert any(m is not None and m.startswith("%pip install") for m in magics)
    for widget in ("kafka.bootstrap.servers", "input_topic", "output_topic",
                   "checkpoint_location", "starting_offsets", "kafka.security.protocol",
                   "kafka.sasl.mechanism", "jaas_secret_scope"):  # fmt: skip
        assert f'"{widget}"' in source
    assert "dbutils.secrets.get(" in source
    assert "build_query(" in source
    # Every Python cell is valid Python.
    for cell, magic in zip(cells, magics, strict=True):
        if magic is None:
            compile(cell, DATABRICKS_NB.name, "exec")


@pytest.mark.spark
def test_databricks_notebook_runs_the_job_locally(spark, cfg: Config, tmp_path: Path) -> None:
    CameraSimulator(cfg, cameras=2, fps=20).run(max_frames=4)
    widgets = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap,
        "input_topic": cfg.input_topic,
        "output_topic": cfg.output_topic,
        "dead_letter_topic": cfg.dead_letter_topic,
        "checkpoint_location": str(tmp_path / "checkpoint"),
        "starting_offsets": "earliest",
        "progress_seconds": "0",
    }
    from databricks_shim import NotebookRun

    run = NotebookRun(namespace={})
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_notebook(DATABRICKS_NB, spark, widgets, run=run)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        records = consume(cfg, cfg.output_topic, 8, timeout_s=180)
    finally:
        query = wait_until(lambda: run.namespace.get("query"), 60, what="the notebook's query")
        wait_until(lambda: run.displayed, 60, what="the notebook to display progress")
        query.stop()
        thread.join(timeout=60)
    assert not errors, errors
    assert all([n for n, _ in r.headers] == list(OUTPUT_HEADERS) for r in records)
    assert len({(r.key, dict(r.headers)["seq"]) for r in records}) == 8
    assert run.pip_commands == ["install opencv-python-headless==4.14.0.94 kafka-python==3.0.12"]
    assert run.markdown_cells >= 2
    assert any("frames in" in str(item) for item in run.displayed)
    # In a Git folder the notebook imports camstream from the repository's src/.
    assert run.namespace["import_path"] == str(REPO / "src")


def test_wheel_for_a_notebook_imported_alone(tmp_path: Path) -> None:
    """Imported alone, the Databricks notebook imports camstream from the wheel (a zip)."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("camstream-*.whl")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import camstream.spark.job, camstream.core.records; print(camstream.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(wheel))
