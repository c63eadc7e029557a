"""The reference demo's three notebooks: what they show, and each Jupyter notebook run alone
against the broker.

The Jupyter notebooks run in a real kernel (papermill); the Databricks notebook runs through
a local shim (tests/databricks_shim.py). The three run as one pipeline in
test_notebook_pipeline.py; the Databricks notebook runs over Spark Connect, against
`camstream analyze`, in test_spark_connect.py.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import cv2
import pytest

from camstream.config import Config
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    H_FITTED,
    H_SKIPPED,
    INPUT_HEADERS,
    OUTPUT_HEADERS,
    FrameMeta,
    analytics_headers,
)
from camstream.core.jpeg import encode_jpeg
from camstream.kafka.clients import make_producer
from databricks_shim import HEADER, SEPARATOR, NotebookRun, magic_command, run_notebook, split_cells
from helpers import (
    CONSUMER_NB,
    DATABRICKS_NB,
    PRODUCER_NB,
    astronaut_bgr,
    consume,
    execute,
    outputs,
    replay_in_consumer_notebook,
    shown_text,
)


def camstream_imports(code: str) -> set[str]:
    """The names a piece of code imports from camstream (modules for plain imports)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("camstream"):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("camstream"))
    return names


def code_of(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


# ---- what the notebooks show ---------------------------------------------------------------
@pytest.mark.parametrize("path", [PRODUCER_NB, CONSUMER_NB])
def test_jupyter_notebooks_are_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code_cells), (
        f"{path.name} has outputs: clear them before committing (make notebooks-clean)"
    )
    assert "parameters" in code_cells[0]["metadata"].get("tags", [])
    assert "kafkabrokers = None" in "".join(code_cells[0]["source"])
    # Prose between the steps: a reader learns why, not only what.
    assert sum(c["cell_type"] == "markdown" for c in nb["cells"]) >= 4


def test_the_producer_notebook_shows_capture_encoding_and_the_producer() -> None:
    code = code_of(PRODUCER_NB)
    for step in ("cv2.VideoCapture(", "cv2.imencode(", "cv2.resize(", "KafkaProducer(",
                 'acks="all"', "enable_idempotence=True", "linger_ms=", "max_request_size=",
                 "producer.send(", "key=camera_id.encode()", "producer.flush(",
                 "time.time_ns()"):  # fmt: skip
        assert step in code, step
    # From camstream only what keeps it honest: the contract's header names, the sample video.
    imported = camstream_imports(code)
    allowed = {"sample_video_path", "H_CAMERA_ID", "H_CAPTURE_TS_NS", "H_HEIGHT",
               "H_SCHEMA_VERSION", "H_SEQ", "H_WIDTH", "SCHEMA_VERSION"}  # fmt: skip
    assert imported <= allowed, imported - allowed


# A markdown item that names headers: "- `width`, `height`: what they hold".
HEADER_ITEM = re.compile(r"^- ((?:`\w+`(?:, )?)+):", re.MULTILINE)


@pytest.mark.parametrize(
    ("path", "heading", "headers"),
    [
        (PRODUCER_NB, "## The frame contract", INPUT_HEADERS),
        (CONSUMER_NB, "## What a record holds",
         (*OUTPUT_HEADERS, H_SKIPPED, H_CARRIED_FROM_SEQ, H_FITTED)),
    ],
    ids=["producer", "consumer"],
)  # fmt: skip
def test_the_notebooks_list_the_contracts_headers(
    path: Path, heading: str, headers: tuple[str, ...]
) -> None:
    """The header names a reader sees are contract.py's, in its order: they cannot drift."""
    cells = json.loads(path.read_text())["cells"]
    markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    (section,) = [text for text in markdown if text.startswith(heading + "\n")]
    items = HEADER_ITEM.findall(section)
    assert [name for item in items for name in re.findall(r"`(\w+)`", item)] == list(headers)


def test_the_consumer_notebook_shows_the_consumer_and_the_display() -> None:
    code = code_of(CONSUMER_NB)
    for step in ("KafkaConsumer(", "consumer.poll(", "display_id=True", ".update(",
                 "html.escape(", "waiting for frames on",
                 'os.environ.get("KAFKA_BOOTSTRAP"'):  # fmt: skip
        assert step in code, step
    imported = camstream_imports(code)
    assert imported <= {"H_CAMERA_ID", "H_CAPTURE_TS_NS", "H_FACES", "H_SEQ", "H_SKIPPED"}


def test_the_databricks_notebook_is_self_contained_and_shows_the_job() -> None:
    source = DATABRICKS_NB.read_text()
    assert source.startswith(HEADER + "\n")
    cells = split_cells(source)
    assert source.count("\n" + SEPARATOR + "\n") == len(cells) - 1
    magics = [magic_command(cell) for cell in cells]
    assert magics[0] is not None and magics[0].startswith("%md")
    pips = [m for m in magics if m is not None and m.startswith("%pip")]
    assert pips == ["%pip install opencv-python-headless==4.11.0.86"]
    python = "\n".join(cell for cell, magic in zip(cells, magics, strict=True) if magic is None)
    assert "dbutils.library.restartPython()" in python
    # Imported alone: no camstream anywhere, no sparkContext (standard access mode has none).
    assert not camstream_imports(python)
    assert "sparkContext" not in python and "addPyFile" not in python
    for step in ('spark.readStream.format("kafka")', '"includeHeaders", "true"', ".mapInArrow(",
                 '.writeStream.format("kafka")', '"checkpointLocation"', "detectMultiScale(",
                 "haarcascade_frontalface_alt.xml", '"scale": 1.1', '"neighbours": 5',
                 "cv2.rectangle(", "cv2.imencode(", "sys.modules",
                 "dbutils.secrets.get("):  # fmt: skip
        assert step in python, step
    assert 'dbutils.widgets.text("kafka_bootstrap_servers", ""' in python  # no default broker
    assert '"/Volumes/' in python  # checkpoints under a Unity Catalog volume by default
    for cell, magic in zip(cells, magics, strict=True):
        if magic is None:
            compile(cell, DATABRICKS_NB.name, "exec")


def test_the_stand_in_display_refuses_what_databricks_refuses(tmp_path: Path) -> None:
    """Databricks' `display` renders DataFrames: a string or a number fails the cell."""
    notebook = tmp_path / "Display.py"
    for value in ('f"batch {1}: 3 frames in 20 ms"', "3", "None", "[1, 2]", "{}"):
        notebook.write_text(f"{HEADER}\nprint('progress')\n\n{SEPARATOR}\n\ndisplay({value})\n")
        run = NotebookRun(namespace={})
        with pytest.raises(Exception, match=r"^Cannot call display\(<class '\w+'>\)$"):
            run_notebook(notebook, object(), {}, run=run)
        assert run.printed == ["progress"] and not run.displayed
    notebook.write_text(f"{HEADER}\ndisplay(spark)\n")  # here `spark` stands for a DataFrame
    frame = object()
    assert run_notebook(notebook, frame, {}).displayed == [frame]


# ---- the Jupyter notebooks, run -------------------------------------------------------------
@functools.cache
def frame_jpeg() -> bytes:
    return encode_jpeg(cv2.resize(astronaut_bgr(), (640, 480), interpolation=cv2.INTER_AREA), 80)


def annotated(camera: str, seq: int, partition: int | None = None) -> dict[str, Any]:
    """An output record as the job writes it (one face), as `producer.send` arguments."""
    meta = FrameMeta(camera, seq, time.time_ns(), 640, 480)
    headers = analytics_headers(meta.to_headers(), [[200, 100, 330, 230]], time.time_ns())
    return {"key": camera.encode(), "value": frame_jpeg(), "headers": headers,
            "partition": partition}  # fmt: skip


def publish(cfg: Config, records: list[dict[str, Any]]) -> None:
    producer = make_producer(cfg)
    for record in records:
        producer.send(cfg.output_topic, **record)
    producer.flush()
    producer.close()


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
    assert {(m.width, m.height) for m in metas} == {(640, 480)}
    shown = outputs(nb)
    assert any("image/jpeg" in out.get("data", {}) for out in shown), "no preview image"
    text = json.dumps(shown)
    assert "12 frames sent" in text and "frames/s" in text and "12 acknowledged" in text


def test_notebooks_take_the_broker_from_the_environment(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", cfg.kafka_bootstrap)  # the kernel inherits it
    execute(PRODUCER_NB, tmp_path / "p.ipynb", topic=cfg.input_topic, fps=25, max_frames=3)
    assert len(consume(cfg, cfg.input_topic, 3)) == 3
    nb = execute(CONSUMER_NB, tmp_path / "c.ipynb", topic=cfg.output_topic, idle_timeout_s=2)
    text = shown_text(nb)
    assert "waiting for frames on" in text and cfg.output_topic in text
    assert "0 frames from 0 cameras" in text


def test_consumer_notebook_escapes_camera_ids_and_shows_one_image_per_camera(
    cfg: Config, tmp_path: Path
) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    a0, a1, a2 = (annotated("cam-a", seq) for seq in range(3))
    h0, h1, h2 = (annotated(hostile, seq) for seq in range(3))
    # cam-a's seq 1 sent twice, the same record (a restarted job writes some again): shown once.
    publish(cfg, [a0, h0, a1, h1, a1, a2, h2])
    nb = replay_in_consumer_notebook(cfg, tmp_path, max_frames=6, idle_timeout_s=10)
    images = [out for out in outputs(nb) if "image/jpeg" in out.get("data", {})]
    assert len(images) == 2  # one per camera, updated in place: not one per frame
    text = shown_text(nb)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    assert "<img src=x" not in text
    assert "6 frames from 2 cameras, 1 duplicates hidden" in text
    captions = ["".join(out["data"]["text/html"]) for out in outputs(nb)
                if "seq " in "".join(out.get("data", {}).get("text/html", ""))]  # fmt: skip
    assert len(captions) == 2 and all(" seq 2: " in c for c in captions), captions


def test_consumer_notebook_stops_at_exactly_max_frames(cfg: Config, tmp_path: Path) -> None:
    # Four frames on each of the topic's two partitions: a poll returns both, and the limit
    # falls inside the first one.
    publish(cfg, [annotated(f"cam-{p}", seq, partition=p) for seq in range(4) for p in (0, 1)])
    nb = replay_in_consumer_notebook(cfg, tmp_path, max_frames=3, idle_timeout_s=5)
    assert re.search(r"\b3 frames from [12] cameras, 0 duplicates", shown_text(nb)), shown_text(nb)
