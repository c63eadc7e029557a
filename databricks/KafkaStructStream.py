# Databricks notebook source
# MAGIC %md
# MAGIC # camstream: face detection on camera streams with Structured Streaming
# MAGIC
# MAGIC Reads JPEG frames from the Kafka topic `camera-stream` (key = camera id, metadata in
# MAGIC headers), detects faces with OpenCV Haar cascades, draws the boxes and writes the
# MAGIC annotated frames to `camera-analytics-stream`. Records that cannot be processed go to
# MAGIC the dead-letter topic with the reason. The job is `camstream.spark.job.build_query`,
# MAGIC the same function that `camstream analyze` runs.
# MAGIC
# MAGIC **Where camstream comes from**
# MAGIC - cloned as a Databricks **Git folder**: from the repository's `src/` folder;
# MAGIC - **imported alone**: from the wheel named by the `camstream_wheel` widget (build it with
# MAGIC   `pip wheel --no-deps . -w dist`, upload it to the workspace or a volume: see the README).
# MAGIC
# MAGIC Set the widgets, then run all. The SASL password never goes into the notebook: the JAAS
# MAGIC configuration is read from a secret scope.

# COMMAND ----------

# MAGIC %pip install opencv-python-headless==4.14.0.94 kafka-python==3.0.12

# COMMAND ----------

dbutils.widgets.text("kafka.bootstrap.servers", "localhost:9092", "Kafka bootstrap servers")
dbutils.widgets.text("input_topic", "camera-stream", "Input topic (frames)")
dbutils.widgets.text("output_topic", "camera-analytics-stream", "Output topic (annotated)")
dbutils.widgets.text("dead_letter_topic", "camera-stream-dlq", "Dead-letter topic")
dbutils.widgets.text("checkpoint_location", "/tmp/camstream/checkpoints", "Checkpoint location")
dbutils.widgets.dropdown("starting_offsets", "latest", ["latest", "earliest"], "Starting offsets")
dbutils.widgets.dropdown("preset", "faithful", ["faithful", "fast"], "Detection preset")
dbutils.widgets.dropdown(
    "kafka.security.protocol",
    "PLAINTEXT",
    ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
    "Kafka security protocol",
)
dbutils.widgets.dropdown(
    "kafka.sasl.mechanism",
    "PLAIN",
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"],
    "SASL mechanism",
)
dbutils.widgets.text("jaas_secret_scope", "", "Secret scope of the JAAS config")
dbutils.widgets.text("jaas_secret_key", "", "Secret key of the JAAS config")
dbutils.widgets.text("create_topics", "true", "Create missing topics (true/false)")
dbutils.widgets.text("camstream_wheel", "", "camstream wheel (when imported alone)")
dbutils.widgets.text("progress_seconds", "0", "Show progress for N s (0: until stopped)")

# COMMAND ----------

# MAGIC %md
# MAGIC Make `camstream` importable on the driver and on the executors: from the Git folder's
# MAGIC `src/`, or from the uploaded wheel (a wheel is a zip that Python imports and Spark ships
# MAGIC with `addPyFile`).

# COMMAND ----------

import shutil
import sys
import tempfile
from pathlib import Path

repo_src = Path.cwd().parent / "src"  # a Git folder runs notebooks in their own folder
camstream_wheel = dbutils.widgets.get("camstream_wheel")
if (repo_src / "camstream").is_dir():
    import_path = str(repo_src)
    shipped = shutil.make_archive(
        str(Path(tempfile.mkdtemp()) / "camstream"), "zip", repo_src, "camstream"
    )
elif camstream_wheel:
    import_path = shipped = camstream_wheel
else:
    raise RuntimeError(
        "camstream not found: run this notebook from a Git folder of the repository, or build"
        " the wheel (pip wheel --no-deps . -w dist), upload it and set the camstream_wheel widget"
    )
sys.path.insert(0, import_path)
spark.sparkContext.addPyFile(shipped)  # the executors' Python workers import it too

# COMMAND ----------

from camstream.config import Config
from camstream.spark.job import build_query
from camstream.viewers.notebook import show_stream_progress

protocol = dbutils.widgets.get("kafka.security.protocol")
kafka_properties = [("security.protocol", protocol)]
if protocol.startswith("SASL"):
    kafka_properties += [
        ("sasl.mechanism", dbutils.widgets.get("kafka.sasl.mechanism")),
        (
            "sasl.jaas.config",
            dbutils.secrets.get(
                dbutils.widgets.get("jaas_secret_scope"), dbutils.widgets.get("jaas_secret_key")
            ),
        ),
    ]

cfg = Config.from_env(
    kafka_bootstrap=dbutils.widgets.get("kafka.bootstrap.servers"),
    input_topic=dbutils.widgets.get("input_topic"),
    output_topic=dbutils.widgets.get("output_topic"),
    dead_letter_topic=dbutils.widgets.get("dead_letter_topic"),
    checkpoint_location=dbutils.widgets.get("checkpoint_location"),
    starting_offsets=dbutils.widgets.get("starting_offsets"),
    detection_preset=dbutils.widgets.get("preset"),
    kafka_properties=tuple(kafka_properties),
)
query = build_query(
    spark, cfg, create_topics=dbutils.widgets.get("create_topics").lower() == "true"
)
print(f"started {query.name}: {cfg.input_topic} -> {cfg.output_topic}")

# COMMAND ----------

show_stream_progress(query, display, seconds=float(dbutils.widgets.get("progress_seconds")))
