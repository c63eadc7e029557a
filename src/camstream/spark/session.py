"""The SparkSession: the Kafka connector on the classpath, loopback binding, camstream shipped."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from camstream.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_session(
    cfg: Config,
    app_name: str = "camstream-analyze",
    extra_conf: dict[str, str] | None = None,
    realtime: bool | None = None,
) -> SparkSession:
    """A SparkSession for `cfg.spark_master` with Spark's Kafka connector on the classpath.

    With `realtime` (by default: when `cfg` asks for Real-time Mode), also the Java
    per-record function and OpenCV's Java build, built on first use.
    """
    from pyspark.sql import SparkSession

    from camstream.spark.jars import spark_kafka_jars
    from camstream.spark.job import is_realtime
    from camstream.spark.packaging import package_zip

    jars = spark_kafka_jars(cfg)
    if realtime or (realtime is None and is_realtime(cfg)):
        from camstream.spark.jars import realtime_jars

        jars = [*jars, *realtime_jars(cfg)]

    # PySpark picks the workers' interpreter from this variable when the context starts;
    # by default they run this same interpreter (and so the same camstream and OpenCV).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(local_with_retries(cfg.spark_master))
        .appName(app_name)
        .config("spark.jars", ",".join(jars))
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.shuffle.partitions", str(max(2, cfg.partitions)))
        # The web UI listens on every interface; keep it off unless asked for.
        .config("spark.ui.enabled", str(cfg.spark_ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        # Kafka credentials travel as source/sink options: keep them out of plans and logs.
        .config("spark.sql.redaction.options.regex", "(?i)url|jaas|password|secret|token")
    )
    if _runs_on_loopback(cfg.spark_master):
        # A local job (or a cluster on this machine) binds to loopback, not to whatever
        # address the hostname resolves to.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    cores = _local_cores(cfg.spark_master)
    if cfg.motion.enabled and cores > 1:
        # One task at a time holding every core, so one Python worker (its frame threads
        # use the cores): the motion gate's models live in a worker, and with a worker per
        # core a camera's frames would alternate between models, each needing its own full
        # detections. On a cluster: spark.task.cpus = spark.executor.cores does the same.
        builder = builder.config("spark.task.cpus", str(cores))
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark_log_level)
    if not cfg.spark_master.startswith("local"):
        # Executors elsewhere get camstream the standard way: a zip on their Python path.
        # Its dependencies (OpenCV, numpy, pyarrow) come from the executors' Python
        # (PYSPARK_PYTHON / spark.pyspark.python, or an environment archive in spark.archives).
        spark.sparkContext.addPyFile(str(package_zip()))
    return spark


# Attempts of a task before its query fails, on a local master as on a cluster (where it is
# spark.task.maxFailures' default): a Python worker that dies (killed, out of memory) costs
# its task a retry, not the job. A local master takes it in its URL only: local[N,F].
LOCAL_TASK_ATTEMPTS = 4


def local_with_retries(master: str) -> str:
    """`master`, a local one given LOCAL_TASK_ATTEMPTS unless it names its own."""
    match = re.fullmatch(r"local(?:\[(\d+|\*)\])?", master.strip())
    if match is None:
        return master  # a cluster's, or local[N,F] already
    return f"local[{match.group(1) or 1},{LOCAL_TASK_ATTEMPTS}]"


def _local_cores(master: str) -> int:
    """The cores of a local master (`local[4]`: 4, `local[*]`: the machine's); 0 otherwise."""
    match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if match is None:
        return 0
    count = match.group(1)
    if count is None:
        return 1
    return (os.cpu_count() or 1) if count == "*" else int(count)


def _runs_on_loopback(master: str) -> bool:
    if master.startswith("local"):
        return True
    host = master.split("://", 1)[-1].split(",", 1)[0].rsplit(":", 1)[0]
    return master.startswith("spark://") and host in ("127.0.0.1", "localhost", "::1", "[::1]")
