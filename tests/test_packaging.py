"""What ships where: executors get only the core and the worker side of the job."""

from __future__ import annotations

import subprocess
import zipfile

from camstream.spark.packaging import package_zip


def test_executors_get_only_what_they_import() -> None:
    with zipfile.ZipFile(package_zip()) as archive:
        names = sorted(archive.namelist())
    tops = {name.split("/")[1] for name in names}
    assert tops == {"__init__.py", "errors.py", "core", "spark"}, names
    assert {n for n in names if n.startswith("camstream/spark/")} == {
        "camstream/spark/__init__.py",
        "camstream/spark/worker.py",
    }
    # Python modules, and the frame contract's source they read.
    assert [n for n in names if not n.endswith(".py")] == ["camstream/core/contract.json"]


def test_the_zip_alone_runs_the_worker_function(python_without_camstream: str) -> None:
    """In an interpreter without camstream, the zip alone analyses a frame as Spark would."""
    archive = str(package_zip())
    script = f"""
import sys
sys.path.insert(0, {archive!r})
import cv2, numpy as np, pyarrow as pa
import camstream.spark.worker as worker
assert worker.__file__.startswith({archive!r}), worker.__file__
from camstream.core.settings import RecordSettings
frame = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
headers = [{{"key": k, "value": v}} for k, v in [("camera_id", b"c"), ("seq", b"1"),
    ("capture_ts_ns", b"1"), ("width", b"64"), ("height", b"48"), ("schema_version", b"1")]]
batch = pa.RecordBatch.from_pydict({{"key": [b"c", None], "value": [frame, b"x"],
    "headers": [headers, headers]}})
process = worker.make_batch_processor(RecordSettings(), worker.WorkerSettings("out", "dlq"))
rows = [row for out in process(iter([batch])) for row in out.to_pylist()]
print([(row["topic"], row["ok"]) for row in rows])
"""
    done = subprocess.run(
        [python_without_camstream, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('out', True), ('dlq', False)]"
