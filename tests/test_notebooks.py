"""The reference demo's three notebooks: what they show, and each Jupyter notebook run alone
against the broker.

The Jupyter notebooks run in a real kernel (papermill); the Databricks notebook runs through
a local shim (tests/databricks_shim.py). The three run as one pipeline in
test_notebook_pipeline.py; the Databricks notebook runs over Spark Connect, against
`camstream analyze`, in test_spark_connect.py.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import time
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

from camstream.config import DETECTION_PRESETS, Config
from camstream.core.contract import (
    H_CARRIED_FROM_SEQ,
    H_FITTED,
    H_SKIPPED,
    INPUT_HEADERS,
    OUTPUT_HEADERS,
    FrameMeta,
)
from camstream.core.jpeg import encode_jpeg
from databricks_shim import (
    HEADER,
    SEPARATOR,
    NotebookRun,
    cell_title,
    magic_command,
    run_notebook,
    split_cells,
)
from helpers import (
    CONSUMER_NB,
    DATABRICKS_NB,
    PRODUCER_NB,
    annotated,
    astronaut_bgr,
    consume,
    execute,
    outputs,
    publish,
    replay_in_consumer_notebook,
    shown_text,
)
from poison import CAMERA

# The Databricks notebook's Python cells, by title, in order.
SETTINGS_CELLS = ("Settings", "Kafka security")
PER_FRAME_CELLS = ("The frame contract", "The JPEG check", "The classifier, once per worker",
                   "Detect and draw", "The per-frame function")  # fmt: skip
DATABRICKS_CELLS = (*SETTINGS_CELLS, "Checkpoint volume", *PER_FRAME_CELLS,
                    "The function Spark runs", "Read the frames", "Write the results",
                    "Progress")  # fmt: skip


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
                 "cv2.rectangle(", "cv2.imencode(", "sys.modules", "dbutils.secrets.get(",
                 "CREATE VOLUME IF NOT EXISTS", "ScramLoginModule",
                 "PlainLoginModule"):  # fmt: skip
        assert step in python, step
    assert 'dbutils.widgets.text("kafka_bootstrap_servers", ""' in python  # no default broker
    assert '"/Volumes/' in python  # checkpoints under a Unity Catalog volume by default
    # Cells a reader can follow: titled, each after its prose, none a wall of code.
    titled = [(cell_title(cell), magics[i - 1]) for i, cell in enumerate(cells) if cell_title(cell)]
    assert [title for title, _ in titled] == list(DATABRICKS_CELLS)
    assert all(before is not None and before.startswith("%md\n## ") for _, before in titled)
    for cell, magic in zip(cells, magics, strict=True):
        if magic is None:
            compile(cell, DATABRICKS_NB.name, "exec")
            assert len(cell.splitlines()) <= 80, cell_title(cell)


def test_the_databricks_notebooks_presets_are_camstreams() -> None:
    """The notebook cannot import camstream; its preset table is checked against it instead,
    field for field, and its preset widget offers exactly those presets."""
    cells = ["The classifier, once per worker", "Detect and draw"]  # cv2, then the table
    run = run_notebook(DATABRICKS_NB, None, {}, titles=cells)
    assert run.namespace["PRESETS"] == {
        name: dataclasses.asdict(settings) for name, settings in DETECTION_PRESETS.items()
    }
    (choices,) = [
        ast.literal_eval(call.args[2])
        for call in ast.walk(ast.parse(DATABRICKS_NB.read_text()))
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "dropdown"
        and ast.literal_eval(call.args[0]) == "preset"
    ]  # fmt: skip
    assert choices == list(DETECTION_PRESETS)


def notebook_definitions(**widgets: str) -> dict[str, Any]:
    """The namespace of the Databricks notebook's per-frame cells, run alone."""
    return run_notebook(DATABRICKS_NB, None, widgets, titles=PER_FRAME_CELLS).namespace


def test_the_databricks_notebook_stops_on_its_environment_and_dead_letters_records() -> None:
    """Only a record's own failure makes a dead letter. A cascade that cannot load, memory,
    a native library, the OS: every record would fail alike, so they raise, with the cause
    (camstream analyze: test_worker's and test_dead_letters' environment-failure tests)."""
    nb = notebook_definitions()
    frame = nb["frame_or_dead_letter"]
    jpeg = encode_jpeg(astronaut_bgr(), 85)
    headers = list(FrameMeta(CAMERA, 0, time.time_ns(), 512, 512).to_headers())
    faithful = nb["PRESETS"]["faithful"]

    def route(value: bytes = jpeg, settings: dict[str, Any] = faithful) -> tuple[Any, ...]:
        return frame(CAMERA.encode(), value, headers, settings, 1_016_384, "out", "dlq")

    topic, _, annotated, out_headers = route()
    assert topic == "out" and dict(out_headers)["faces"] == b"1"
    (x1, y1, x2, _), *_ = json.loads(dict(out_headers)["boxes_xyxy"])
    top_edge = cv2.imdecode(np.frombuffer(annotated, np.uint8), cv2.IMREAD_COLOR)[
        y1, (x1 + x2) // 2
    ]
    assert abs(top_edge.astype(int) - (0, 255, 0)).max() < 60  # the 2018 demo's green box
    assert nb["classifier"](faithful["cascade"]) is nb["classifier"](faithful["cascade"])
    with pytest.raises(nb["EnvironmentFailure"], match=r"cannot load the Haar cascade '.*no-such"):
        route(settings={**faithful, "cascade": "no-such-cascade.xml"})
    topic, key, value, dead = route(jpeg[: len(jpeg) // 2])
    assert (topic, key, value) == ("dlq", CAMERA.encode(), jpeg[: len(jpeg) // 2])
    assert dict(dead)["error"] == b"BadRecord: JPEG is truncated (no end-of-image marker)"

    def failing(failure: BaseException) -> Any:
        def detect(*args: Any) -> None:
            raise failure

        return detect

    for failure in (ImportError("libGL.so.1: cannot open"), OSError(24, "Too many open files")):
        nb["detect"] = failing(failure)
        with pytest.raises(nb["EnvironmentFailure"]) as stopped:
            route()
        assert f"cannot process frames ({type(failure).__name__}: {failure})" in str(stopped.value)
    nb["detect"] = failing(MemoryError())
    with pytest.raises(MemoryError):
        route()
    for failure in (cv2.error("bad"), RecursionError("too deep"), ValueError("odd")):
        nb["detect"] = failing(failure)
        topic, _, _, dead = route()
        assert topic == "dlq" and dict(dead)["error"].startswith(type(failure).__name__.encode())


@pytest.mark.parametrize(
    ("mechanism", "module"),
    [("PLAIN", "plain.PlainLoginModule"), ("SCRAM-SHA-256", "scram.ScramLoginModule"),
     ("SCRAM-SHA-512", "scram.ScramLoginModule")],
)  # fmt: skip
def test_the_databricks_notebook_logs_in_with_plain_or_scram(
    mechanism: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JAAS line for the chosen mechanism, from two secrets; under the runtime's shaded
    package name on Databricks, Kafka's own elsewhere; quotes and backslashes escaped."""
    widgets = {"kafka_bootstrap_servers": "broker:9093", "sasl_mechanism": mechanism}
    secrets = {("camstream", "kafka-username"): "app", ("camstream", "kafka-password"): 'p"w\\x'}
    quoted = r'username="app" password="p\"w\\x";'
    for runtime, package in ((None, "org.apache.kafka"), ("16.4", "kafkashaded.org.apache.kafka")):
        if runtime:
            monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", runtime)
        run = run_notebook(DATABRICKS_NB, None, widgets, secrets, titles=SETTINGS_CELLS)
        assert run.namespace["kafka_options"] == {
            "kafka.bootstrap.servers": "broker:9093",
            "kafka.security.protocol": "SASL_SSL",
            "kafka.sasl.mechanism": mechanism,
            "kafka.sasl.jaas.config": f"{package}.common.security.{module} required {quoted}",
        }
        assert 'p"w' not in "\n".join(run.printed)


class UnityCatalogSql:
    """`spark.sql` of a workspace with Unity Catalog, as far as the checkpoint cell asks it:
    volumes are created where `allowed`, described where they exist."""

    def __init__(self, allowed: bool, existing: set[str]) -> None:
        self.allowed, self.existing, self.statements = allowed, existing, []

    def sql(self, statement: str) -> Any:
        self.statements.append(statement)
        volume = statement.split()[-1]
        if statement.startswith("CREATE VOLUME") and not self.allowed:
            raise Exception("[PERMISSION_DENIED] User does not have CREATE VOLUME on Schema")
        if statement.startswith("DESCRIBE VOLUME") and volume not in self.existing:
            raise Exception(f"[UNITY_CATALOG_VOLUME_NOT_FOUND] {volume}")
        return types.SimpleNamespace(collect=list)


@pytest.mark.spark
def test_the_databricks_notebook_makes_or_checks_its_checkpoint_volume(
    spark: Any, tmp_path: Path
) -> None:
    """A /Volumes root: its volume is created (for users allowed to) or, if it exists, used;
    else the cell stops with one line naming the widget. Local Spark has no volumes at all."""
    widgets = {"kafka_bootstrap_servers": "broker:9092", "input_topic": "in", "output_topic": "out"}
    volume = "/Volumes/main/default/camstream/checkpoints"

    def checkpoint(root: str, sql: Any) -> Any:
        cells = ["Settings", "Checkpoint volume"]
        return run_notebook(DATABRICKS_NB, sql, {**widgets, "checkpoint_root": root}, titles=cells)

    local = checkpoint(str(tmp_path), spark)  # not a volume: used as it is
    assert local.namespace["checkpoint"] == f"{tmp_path}/in--out"
    allowed = UnityCatalogSql(allowed=True, existing=set())
    assert checkpoint(volume, allowed).namespace["checkpoint"] == f"{volume}/in--out"
    assert allowed.statements == ["CREATE VOLUME IF NOT EXISTS `main`.`default`.`camstream`"]
    made_by_admin = UnityCatalogSql(allowed=False, existing={"`main`.`default`.`camstream`"})
    checkpoint(volume, made_by_admin)
    assert made_by_admin.statements[1] == "DESCRIBE VOLUME `main`.`default`.`camstream`"

    for root, sql, cause in [
        ("/Volumes/nowhere/default/camstream/x", spark, "PARSE_SYNTAX_ERROR"),  # no UC here
        (volume, UnityCatalogSql(allowed=False, existing=set()), "PERMISSION_DENIED"),
        ("/Volumes/main/default", spark, "is not in a volume"),
    ]:
        with pytest.raises(Exception, match="set the checkpoint_root widget to /Volumes/") as stop:
            checkpoint(root, sql)
        assert type(stop.value).__name__ == "CheckpointUnusable"
        assert cause in str(stop.value) and "\n" not in str(stop.value)


def test_the_stand_in_display_refuses_what_databricks_refuses(tmp_path: Path) -> None:
    """Databricks' `display` renders DataFrames and HTML-rendering objects: a string, a
    number, a plain object fail the cell, with the runtime's message."""
    notebook = tmp_path / "Display.py"
    for value in ('f"batch {1}: 3 frames in 20 ms"', "3", "None", "[1, 2]", "{}", "object()"):
        notebook.write_text(f"{HEADER}\nprint('progress')\n\n{SEPARATOR}\n\ndisplay({value})\n")
        run = NotebookRun(namespace={})
        with pytest.raises(Exception, match=r"^Cannot call display\(<class '\w+'>\)$"):
            run_notebook(notebook, object(), {}, run=run)
        assert run.printed == ["progress"] and not run.displayed
    notebook.write_text(f"{HEADER}\ndisplay(spark)\n")  # here `spark` stands for a DataFrame
    for frame in (pd.DataFrame({"faces": [1]}), types.SimpleNamespace(_repr_html_=lambda: "")):
        assert run_notebook(notebook, frame, {}).displayed == [frame]


# ---- the Jupyter notebooks, run -------------------------------------------------------------
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
