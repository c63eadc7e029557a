# Databricks notebook source
# MAGIC %md
# MAGIC # Face detection on camera streams with Structured Streaming
# MAGIC
# MAGIC The middle of the pipeline: read JPEG frames from the Kafka topic `camera-stream`,
# MAGIC detect faces with an OpenCV Haar cascade, draw the boxes, and write the annotated JPEG
# MAGIC to `camera-analytics-stream`; a record that cannot be processed goes to the
# MAGIC dead-letter topic with the reason, and the stream goes on. A failure that is no
# MAGIC record's fault (a cascade that does not load) stops the query with its cause instead.
# MAGIC The default detector, `faithful`, is the 2018 reference demo's call exactly.
# MAGIC
# MAGIC This notebook is self-contained: import it alone (Workspace > Import > File) and run
# MAGIC it. It needs nothing but OpenCV, installed by the next cell; no camstream package.
# MAGIC `camstream analyze` runs the same job from the command line, and the project's tests
# MAGIC check that both give the same boxes and dead-letter the same records.
# MAGIC
# MAGIC **Compute**: Databricks Runtime 14.3 LTS to 17.3 LTS (Spark 3.5 and 4.0), dedicated
# MAGIC or standard access mode (the notebook uses only the DataFrame API: no `sparkContext`,
# MAGIC no `addPyFile`). The runtime ships Spark's Kafka connector.
# MAGIC
# MAGIC **Topics**: create them before the first run, in your Kafka service (the job does not
# MAGIC create topics: managed services often do not let a job do it). The dead-letter topic
# MAGIC must accept a little more than the input topic (`max.message.bytes` + 2 KB), since a
# MAGIC dead letter is the input record plus its reason.

# COMMAND ----------

# MAGIC %md
# MAGIC OpenCV 4.11.0.86: the newest `opencv-python-headless` that works with numpy 1.x as well
# MAGIC as 2.x (4.12 and later need numpy 2). It fits every runtime above: 14.3 LTS (Python
# MAGIC 3.10, numpy 1.23), 15.4 LTS (Python 3.11, numpy 1.23), 16.4 LTS (Python 3.12, numpy
# MAGIC 1.26) and 17.3 LTS (Python 3.12, numpy 2). OpenCV 5 has no Haar cascades: stay on 4.x.
# MAGIC The library is notebook-scoped: the driver and the executors get it.

# COMMAND ----------

# MAGIC %pip install opencv-python-headless==4.11.0.86

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

# MAGIC %md
# MAGIC ## Settings
# MAGIC
# MAGIC Kafka's address has no default: set `kafka_bootstrap_servers`. The preset chooses the
# MAGIC detector (below, "Detect and draw"): `faithful` is the 2018 reference demo's call
# MAGIC exactly; `equalized` and `fast` are tuned variants.

# COMMAND ----------

# DBTITLE 1,Settings
dbutils.widgets.text("kafka_bootstrap_servers", "", "Kafka bootstrap servers (host:port,...)")
dbutils.widgets.text("input_topic", "camera-stream", "Input topic")
dbutils.widgets.text("output_topic", "camera-analytics-stream", "Output topic")
dbutils.widgets.text("dead_letter_topic", "camera-stream-dlq", "Dead-letter topic")
dbutils.widgets.text(
    "checkpoint_root", "/Volumes/main/default/camstream/checkpoints", "Checkpoint folder"
)
dbutils.widgets.dropdown("starting_offsets", "latest", ["latest", "earliest"], "Starting offsets")
dbutils.widgets.dropdown(
    "preset", "faithful", ["faithful", "equalized", "fast"], "Detection preset"
)
dbutils.widgets.dropdown(
    "security_protocol", "SASL_SSL", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], "Security"
)
dbutils.widgets.dropdown(
    "sasl_mechanism", "PLAIN", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "SASL mechanism"
)
dbutils.widgets.text("secret_scope", "camstream", "Secret scope of the Kafka credentials")
dbutils.widgets.text("secret_user_key", "kafka-username", "Secret key of the Kafka user name")
dbutils.widgets.text("secret_key", "kafka-password", "Secret key of the Kafka password")
dbutils.widgets.text("max_message_bytes", "1016384", "Output topic's max.message.bytes")
dbutils.widgets.text("progress_seconds", "60", "Show progress for (s, 0: until stopped)")

bootstrap = dbutils.widgets.get("kafka_bootstrap_servers").strip()
if not bootstrap:
    raise ValueError("set the kafka_bootstrap_servers widget to your brokers (host:port,...)")
input_topic = dbutils.widgets.get("input_topic")
output_topic = dbutils.widgets.get("output_topic")
dead_letter_topic = dbutils.widgets.get("dead_letter_topic")
preset = dbutils.widgets.get("preset")
output_limit = int(dbutils.widgets.get("max_message_bytes"))
print(f"{input_topic} -> {output_topic} (dead letters: {dead_letter_topic}), preset {preset}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Kafka's security: PLAIN or SCRAM
# MAGIC
# MAGIC With `SASL_SSL` (or `SASL_PLAINTEXT`) the Kafka client logs in with the JAAS line in
# MAGIC `kafka.sasl.jaas.config`; the next cell builds it for the chosen mechanism from a user
# MAGIC name and a password kept in a secret scope, never in a widget
# MAGIC (`databricks secrets create-scope camstream`, then `databricks secrets put-secret
# MAGIC camstream kafka-username` and `... kafka-password`):
# MAGIC
# MAGIC - `PLAIN` (Confluent Cloud's API key and secret, Event Hubs' `$ConnectionString` and
# MAGIC   connection string, Redpanda Cloud):
# MAGIC   `kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule required
# MAGIC   username="<key>" password="<secret>";`
# MAGIC - `SCRAM-SHA-256` or `SCRAM-SHA-512` (Amazon MSK, Aiven, self-managed brokers): the
# MAGIC   same line with `kafkashaded.org.apache.kafka.common.security.scram.ScramLoginModule`;
# MAGIC   the mechanism itself is `kafka.sasl.mechanism`.
# MAGIC
# MAGIC The Databricks Runtime ships Kafka's client relocated under the `kafkashaded.` prefix,
# MAGIC so the login module's class name carries it there (the unprefixed name is not found);
# MAGIC open-source Spark, as in the project's local tests, has the classes under their own
# MAGIC name. The cell picks the prefix from `DATABRICKS_RUNTIME_VERSION`, which the runtime
# MAGIC sets. For Amazon MSK and Azure Event Hubs with IAM or Entra ID, Databricks' Kafka
# MAGIC authentication page recommends a Unity Catalog service credential instead, above all
# MAGIC on standard access mode and serverless: the option `databricks.serviceCredential`
# MAGIC (Runtime 16.1 and later) in `kafka_options`, in place of the JAAS line.
# MAGIC
# MAGIC A broker whose certificate a private CA signed (managed services use public CAs, which
# MAGIC the runtime trusts): put the CA's PEM file on a volume and add
# MAGIC `kafka.ssl.truststore.type` `PEM` and `kafka.ssl.truststore.location` (its path) to
# MAGIC `kafka_options`.

# COMMAND ----------

# DBTITLE 1,Kafka security
import os

KAFKA_CLIENT_PACKAGE = (
    "kafkashaded.org.apache.kafka" if "DATABRICKS_RUNTIME_VERSION" in os.environ
    else "org.apache.kafka"
)  # fmt: skip
LOGIN_MODULES = {
    "PLAIN": "common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "common.security.scram.ScramLoginModule",
}


def jaas_config(mechanism, username, password):
    """The `sasl.jaas.config` line: Kafka reads each value as a quoted Java string."""

    def quoted(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    module = f"{KAFKA_CLIENT_PACKAGE}.{LOGIN_MODULES[mechanism]}"
    return f"{module} required username={quoted(username)} password={quoted(password)};"


# Options for the Kafka source and sink alike: the address and, if any, the security.
protocol = dbutils.widgets.get("security_protocol")
kafka_options = {"kafka.bootstrap.servers": bootstrap, "kafka.security.protocol": protocol}
if protocol.startswith("SASL_"):
    mechanism = dbutils.widgets.get("sasl_mechanism")
    scope = dbutils.widgets.get("secret_scope")
    kafka_options["kafka.sasl.mechanism"] = mechanism
    kafka_options["kafka.sasl.jaas.config"] = jaas_config(
        mechanism,
        dbutils.secrets.get(scope, dbutils.widgets.get("secret_user_key")),
        dbutils.secrets.get(scope, dbutils.widgets.get("secret_key")),
    )
    print(f"{protocol} with {mechanism} ({LOGIN_MODULES[mechanism].rsplit('.', 1)[1]})")
else:
    print(protocol)

# COMMAND ----------

# MAGIC %md
# MAGIC ## The checkpoint's volume
# MAGIC
# MAGIC The checkpoint keeps the query's offsets, one folder per pair of topics under
# MAGIC `checkpoint_root`. Under `/Volumes/<catalog>/<schema>/<volume>/...` (a Unity Catalog
# MAGIC volume) the volume is created when it is missing, for users allowed to
# MAGIC (`CREATE VOLUME` on the schema); a volume that exists is used as it is. When it can be
# MAGIC neither created nor found (no such catalog: many workspaces have no `main`; no right
# MAGIC to create it; no Unity Catalog), the cell stops with one line that says what to set
# MAGIC `checkpoint_root` to, instead of the query failing at its first `start()`. Any other
# MAGIC path (`s3://`, `abfss://`, `dbfs:/`, a local folder) is used as it is.

# COMMAND ----------

# DBTITLE 1,Checkpoint volume
import re


class CheckpointUnusable(Exception):
    """The checkpoint_root widget names a volume that cannot be used; the message says why."""


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def ensure_volume(root):
    """Create the Unity Catalog volume a /Volumes/... root lies in, if it is missing."""
    parts = re.fullmatch(r"/Volumes/([^/]+)/([^/]+)/([^/]+)(?:/.*)?", root)
    if parts is None:
        raise CheckpointUnusable(
            f"checkpoint_root {root!r} is not in a volume: set the checkpoint_root widget to"
            " /Volumes/<catalog>/<schema>/<volume>/checkpoints"
        )
    volume = ".".join(f"`{name.replace('`', '``')}`" for name in parts.groups())
    try:
        spark.sql(f"CREATE VOLUME IF NOT EXISTS {volume}")
    except Exception as refused:
        try:  # someone allowed to may have created it: then it is used as it is
            spark.sql(f"DESCRIBE VOLUME {volume}").collect()
        except Exception:
            raise CheckpointUnusable(
                f"the volume {'.'.join(parts.groups())} cannot be created here"
                f" ({first_line(refused)}): set the checkpoint_root widget to"
                " /Volumes/<catalog>/<schema>/<volume>/checkpoints in a schema where you may"
                " create volumes or in a volume you may write, or to a cloud path the cluster"
                " may write (s3://, abfss://, gs://)"
            ) from None


checkpoint_root = dbutils.widgets.get("checkpoint_root").rstrip("/")
if checkpoint_root.startswith("/Volumes/"):
    ensure_volume(checkpoint_root)
checkpoint = f"{checkpoint_root}/{input_topic}--{output_topic}"
print(f"checkpoint {checkpoint}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## The frame contract
# MAGIC
# MAGIC The per-frame code is plain Python over bytes and numpy: it knows nothing of Spark or
# MAGIC Kafka. It starts with the contract, because a camera (or anything else that can write
# MAGIC to the topic) may send anything: the key is the camera id, which keeps a camera's
# MAGIC frames on one partition and in order; the headers `camera_id`, `seq`, `capture_ts_ns`,
# MAGIC `width`, `height` and `schema_version` are each present once, UTF-8, and whole numbers
# MAGIC where they should be. A record that breaks it raises `BadRecord`, saying how, and
# MAGIC becomes a dead letter with that reason.
# MAGIC
# MAGIC The contract's names and limits are the constants at the top of the cell, all of them:
# MAGIC camstream states them once, in `src/camstream/core/contract.json`, and this notebook
# MAGIC (which runs without camstream) keeps a copy that a test checks against that file.

# COMMAND ----------

# DBTITLE 1,The frame contract
# ---- the contract's rules: a copy of camstream's contract.json, checked by its tests ----
SCHEMA_VERSION = "1"
CONTRACT = ("camera_id", "seq", "capture_ts_ns", "width", "height", "schema_version")
LONG_MAX = 2**63 - 1  # integers fit a Java long
MAX_SIDE = 65535  # JPEG stores each side in 16 bits
CAMERA_ID_CHARS = (1, 255)
WHOLE_NUMBERS = {
    "seq": (0, LONG_MAX),
    "capture_ts_ns": (0, LONG_MAX),
    "width": (1, MAX_SIDE),
    "height": (1, MAX_SIDE),
}
MAX_PIXELS = 8192 * 8192  # larger would let one frame exhaust a worker's memory
# What camstream's jobs add: to a frame, and to a dead letter (the reason at most
# MAX_ERROR_BYTES). An input's headers of these names are not passed on.
RESULT_HEADERS = (
    *("faces", "boxes_xyxy", "analyzed_ts_ns", "skipped", "fitted"),
    *("carried_from_seq", "headers_dropped"),
)
DEAD_LETTER_HEADERS = (
    *("error", "failed_ts_ns", "source_topic", "source_partition", "source_offset"),
    *("source_timestamp_ms", "value_bytes", "value_dropped", "key_hashed"),
)
MAX_ERROR_BYTES = 1000
# ---- end of the copy ----


class BadRecord(ValueError):
    """The record breaks the frame contract; the message says how."""


def header_values(headers):
    """Contract headers as text: each once, UTF-8, present."""
    values = {}
    for name, raw in headers:
        if name in CONTRACT:
            if name in values:
                raise BadRecord(f"header {name!r} appears more than once")
            if raw is None:
                raise BadRecord(f"header {name!r} is null")
            values[name] = bytes(raw).decode("utf-8")  # UnicodeDecodeError: a bad record too
    missing = [name for name in CONTRACT if name not in values]
    if missing:
        raise BadRecord(f"missing header(s): {', '.join(missing)}")
    if values["schema_version"] != SCHEMA_VERSION:
        raise BadRecord(f"unsupported schema_version {values['schema_version']!r}")
    return values


def whole_number(values, name):
    low, high = WHOLE_NUMBERS[name]
    text = values[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise BadRecord(
            f"header {name!r} is not a whole number from {low} to {high}: {text[:30]!r}"
        )
    return int(text)


def check_contract(key, value, headers):
    """(camera_id, width, height) of a record that keeps the contract; else BadRecord."""
    values = header_values(headers)
    camera_id = values["camera_id"]
    low, high = CAMERA_ID_CHARS
    if not low <= len(camera_id) <= high:
        raise BadRecord(f"camera_id must be {low}-{high} characters")
    if key is None or bytes(key) != camera_id.encode():
        raise BadRecord("the record key must be the camera id (it keeps a camera in order)")
    for name in ("seq", "capture_ts_ns"):
        whole_number(values, name)
    width = whole_number(values, "width")
    height = whole_number(values, "height")
    if value is None or not value:
        raise BadRecord("empty frame value")
    return camera_id, width, height


# COMMAND ----------

# MAGIC %md
# MAGIC ## The JPEG check
# MAGIC
# MAGIC Before anything decodes pixels, the JPEG's segments are walked: its size comes from its
# MAGIC start-of-frame segment, and it must end with an end-of-image marker. So a frame that
# MAGIC claims 640x480 but holds 65000x65000 pixels is refused before it takes gigabytes to
# MAGIC decode, and a truncated frame is named as such; what follows the end of the image (a
# MAGIC trailer some cameras append) is not passed on.

# COMMAND ----------


# DBTITLE 1,The JPEG check
def jpeg_size_and_end(jpeg):
    """(width, height, end of image) from the JPEG's segments, without decoding pixels."""
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise BadRecord("value is not a JPEG")
    size, pos = None, 2
    while True:
        if pos + 2 > len(jpeg):
            raise BadRecord("JPEG is truncated (no end-of-image marker)")
        if jpeg[pos] != 0xFF:
            raise BadRecord("JPEG is corrupt")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image; anything after it is a trailer
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > len(jpeg):
            raise BadRecord("JPEG is truncated (no end-of-image marker)")
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and size is None:
            size = (int.from_bytes(jpeg[pos + 7 : pos + 9], "big"),
                    int.from_bytes(jpeg[pos + 5 : pos + 7], "big"))  # fmt: skip
        pos += 2 + length
        if marker == 0xDA:  # image data: it ends at the first FF not followed by 00, RSTn or FF
            while True:
                pos = jpeg.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= len(jpeg):
                    raise BadRecord("JPEG is truncated (no end-of-image marker)")
                follower = jpeg[pos + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7:
                    pos += 2
                elif follower == 0xFF:
                    pos += 1
                else:
                    break
    if not size or 0 in size:
        raise BadRecord("JPEG has no usable start-of-frame segment")
    return size[0], size[1], pos + 2


def check_jpeg(value, width, height):
    """The JPEG up to its end-of-image marker, if it has the size its headers give."""
    real_width, real_height, end = jpeg_size_and_end(bytes(value))
    if (real_width, real_height) != (width, height):
        raise BadRecord(f"headers say {width}x{height}, the JPEG is {real_width}x{real_height}")
    if width * height > MAX_PIXELS:
        raise BadRecord(f"frame exceeds {MAX_PIXELS} pixels")
    return bytes(value[:end])


# COMMAND ----------

# MAGIC %md
# MAGIC ## The classifier, once per worker
# MAGIC
# MAGIC The pattern this notebook is about. Loading a Haar cascade parses an XML file of 0.7 to
# MAGIC 0.9 MB: 10 to 25 ms (measured with OpenCV 4.14 on the project's test machine), a third
# MAGIC or more of what the `fast` preset's whole detection takes on a 640x480 frame (about
# MAGIC 40 ms there). Loaded per frame, that would be added to every frame; loaded once per
# MAGIC worker, it costs nothing per frame.
# MAGIC
# MAGIC Spark runs this Python in worker processes that it reuses from task to task and batch
# MAGIC to batch. But a variable of the notebook does not live in them: Spark sends the function
# MAGIC with each task, and the globals it refers to are unpickled afresh for each. A module
# MAGIC lives as long as the process: so the classifiers are kept in a small module registered
# MAGIC in `sys.modules`, one per worker process, created by the first task that needs it. A
# MAGIC worker runs one task at a time, so one classifier per cascade is enough (OpenCV's
# MAGIC `detectMultiScale` is not safe to share between threads).
# MAGIC
# MAGIC A cascade that does not load is not a record's fault: every frame would fail alike.
# MAGIC It raises `EnvironmentFailure`, which stops the query (below), rather than making a
# MAGIC dead letter of every frame while the stream looks healthy.

# COMMAND ----------

# DBTITLE 1,The classifier, once per worker
import sys
import types

import cv2


class EnvironmentFailure(Exception):
    """Not a record's fault: this worker cannot analyse frames at all."""


def worker_cache():
    """The worker process's cache: a module, which outlives the tasks that use it."""
    cache = sys.modules.get("camera_stream_worker_cache")
    if cache is None:
        cache = types.ModuleType("camera_stream_worker_cache")
        cache.classifiers = {}
        cv2.setNumThreads(1)  # Spark already runs one task per core
        sys.modules["camera_stream_worker_cache"] = cache
    return cache


def classifier(name):
    """The Haar cascade `name` (one of OpenCV's), loaded once per worker process."""
    classifiers = worker_cache().classifiers
    if name not in classifiers:
        path = cv2.data.haarcascades + name
        loaded = cv2.CascadeClassifier(path)
        if loaded.empty():
            raise EnvironmentFailure(
                f"cannot load the Haar cascade {path!r}: is opencv-python-headless 4.x"
                " installed (the %pip cell)?"
            )
        classifiers[name] = loaded
    return classifiers[name]


# COMMAND ----------

# MAGIC %md
# MAGIC ## Detect and draw
# MAGIC
# MAGIC The faces are found on a grey copy and drawn on the colour frame. The presets:
# MAGIC
# MAGIC - `faithful`: the 2018 reference demo's call exactly: grey,
# MAGIC   `haarcascade_frontalface_alt`, `detectMultiScale(scaleFactor=1.1, minNeighbors=5)`
# MAGIC   with no minimum size, on the full frame; green `(0, 255, 0)` boxes of thickness 2.
# MAGIC - `equalized`: the same, plus histogram equalisation of the grey copy (`equalizeHist`,
# MAGIC   for dim or washed-out scenes) and a 30-px minimum face; red boxes that thicken with
# MAGIC   the frame.
# MAGIC - `fast`: `haarcascade_frontalface_default`, scale factor 1.2, 5 neighbours, 24-px
# MAGIC   faces, equalised, on a 320-px wide copy (decoded straight at 1/2, 1/4 or 1/8 size,
# MAGIC   which JPEG does far cheaper than a full decode); red boxes.
# MAGIC
# MAGIC They are camstream's presets, field for field (a test compares the tables). Boxes are
# MAGIC `[x1, y1, x2, y2]` in full-frame pixels; pixels are taken as stored (an EXIF rotation
# MAGIC is ignored: the boxes must fit the frame as its headers describe it).

# COMMAND ----------

# DBTITLE 1,Detect and draw
import numpy as np

RED, GREEN = (0, 0, 255), (0, 255, 0)
# box_thickness None: grows with the frame (2 px up to 480 lines, then a pixel per 240).
PRESETS = {
    "faithful": {"cascade": "haarcascade_frontalface_alt.xml", "scale_factor": 1.1,
                 "min_neighbors": 5, "min_size": 0, "detect_width": None,
                 "equalize_histogram": False, "box_colour_bgr": GREEN, "box_thickness": 2},
    "equalized": {"cascade": "haarcascade_frontalface_alt.xml", "scale_factor": 1.1,
                  "min_neighbors": 5, "min_size": 30, "detect_width": None,
                  "equalize_histogram": True, "box_colour_bgr": RED, "box_thickness": None},
    "fast": {"cascade": "haarcascade_frontalface_default.xml", "scale_factor": 1.2,
             "min_neighbors": 5, "min_size": 24, "detect_width": 320,
             "equalize_histogram": True, "box_colour_bgr": RED, "box_thickness": None},
}  # fmt: skip
AS_STORED = cv2.IMREAD_IGNORE_ORIENTATION
REDUCED_GREY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))  # fmt: skip


def decoded(jpeg, flags):
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), flags | AS_STORED)
    if image is None or image.size == 0:
        raise BadRecord("JPEG could not be decoded (corrupt or truncated)")
    return image


def detection_grey(jpeg, width, settings):
    """The grey image the detector sees: the full frame, or a copy `detect_width` wide."""
    small_width, flags = settings["detect_width"], cv2.IMREAD_GRAYSCALE
    if small_width:
        flags = next((f for factor, f in REDUCED_GREY if width // factor >= small_width), flags)
    grey = decoded(jpeg, flags)
    if small_width and grey.shape[1] > small_width:
        small = (small_width, max(1, round(grey.shape[0] * small_width / grey.shape[1])))
        grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
    return grey


def detect(grey, settings, full_width, full_height):
    """Boxes [x1, y1, x2, y2] in full-frame pixels, found on a grey (maybe smaller) copy."""
    scale = full_width / grey.shape[1]
    if settings["equalize_histogram"]:
        grey = cv2.equalizeHist(grey)
    # min_size 0 stays 0: OpenCV's "no minimum" (the cascade's own 20-px window).
    side = round(settings["min_size"] / scale) if settings["min_size"] else 0
    found = classifier(settings["cascade"]).detectMultiScale(
        grey, scaleFactor=settings["scale_factor"], minNeighbors=settings["min_neighbors"],
        minSize=(side, side),
    )  # fmt: skip
    boxes = []
    for x, y, w, h in np.asarray(found, dtype=np.float64) * scale if len(found) else []:
        box = np.rint([x, y, x + w, y + h]).astype(int)
        boxes.append([int(min(max(v, 0), full_width if i % 2 == 0 else full_height))
                      for i, v in enumerate(box)])  # fmt: skip
    return boxes


def draw(jpeg, boxes, settings, width, height):
    """The colour frame with the boxes drawn in the preset's colour and thickness."""
    frame = decoded(jpeg, cv2.IMREAD_COLOR)
    thickness = settings["box_thickness"] or max(2, round(min(width, height) / 240))
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(frame, (x1, y1), (x2, y2), settings["box_colour_bgr"], thickness)
    return frame


# COMMAND ----------

# MAGIC %md
# MAGIC ## The per-frame function: an annotated frame, or a dead letter
# MAGIC
# MAGIC One record in, one record out: the annotated frame for the output topic (re-encoded at
# MAGIC the highest quality that fits the topic, with the `faces`, `boxes_xyxy` and
# MAGIC `analyzed_ts_ns` headers), or the record as it came, with `error` (the reason) and
# MAGIC `failed_ts_ns` headers, for the dead-letter topic; the stream goes on with the next.
# MAGIC
# MAGIC Only a record's own failure is dead-lettered. A failure of the environment (the
# MAGIC cascade missing, `MemoryError`, an `ImportError` of a native library, an `OSError`:
# MAGIC nothing here reads files or sockets per record) would fail every record alike, so it
# MAGIC is raised: the Spark task fails, Spark retries it, and the query stops with that cause.
# MAGIC `camstream analyze` draws the same line (`camstream.errors.ENVIRONMENT_FAILURES`).

# COMMAND ----------

# DBTITLE 1,The per-frame function
import json
import time

HEADER_ROOM = 16384  # what the headers may take of the output topic's max.message.bytes


def analyse(key, value, headers, settings, output_limit):
    """(key, annotated JPEG, output headers) of a record; BadRecord (or any error) raised."""
    camera_id, width, height = check_contract(key, value, headers)
    out = jpeg = check_jpeg(value, width, height)
    boxes = detect(detection_grey(jpeg, width, settings), settings, width, height)
    if boxes:
        frame = draw(jpeg, boxes, settings, width, height)
        for quality in (80, 70, 60, 50, 40):  # the highest that fits the output topic
            out = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
            if len(out) + HEADER_ROOM <= output_limit:
                break
    if len(out) + HEADER_ROOM > output_limit:
        raise BadRecord(f"annotated frame of {len(out)} bytes does not fit the output topic")
    ours = (*RESULT_HEADERS, *DEAD_LETTER_HEADERS)
    kept = [(n, bytes(v)) for n, v in headers if v is not None and n not in ours]
    return (
        camera_id.encode(),
        out,
        [
            *kept,
            ("faces", str(len(boxes)).encode()),
            ("boxes_xyxy", json.dumps(boxes, separators=(",", ":")).encode()),
            ("analyzed_ts_ns", str(time.time_ns()).encode()),
        ],
    )


def frame_or_dead_letter(key, value, headers, settings, output_limit, output, dead_letters):
    """(topic, key, value, headers) to write for one record. Never raises for the record's
    sake; raises EnvironmentFailure (or MemoryError) when no record could be processed."""
    try:
        return (output, *analyse(key, value, headers, settings, output_limit))
    except (EnvironmentFailure, MemoryError):
        raise  # MemoryError as it is: no message to build while memory is short
    except (ImportError, OSError) as exc:
        raise EnvironmentFailure(
            f"this worker cannot process frames ({type(exc).__name__}: {exc}); the task fails"
            " instead of dead-lettering every record, which are not at fault"
        ) from exc
    except Exception as exc:  # the record's own fault: a dead letter, and the stream goes on
        reason = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:MAX_ERROR_BYTES]
        failed = [("error", reason.decode("utf-8", "ignore").encode()),
                  ("failed_ts_ns", str(time.time_ns()).encode())]  # fmt: skip
        return dead_letters, key, value, [*headers, *failed]


# COMMAND ----------

# MAGIC %md
# MAGIC ## The function Spark runs: Arrow batches in, one row out per record
# MAGIC
# MAGIC `mapInArrow` hands each Python worker its partition's records as Arrow batches, so
# MAGIC records are not converted one by one. Each input row gives exactly one output row, and
# MAGIC the sink picks the topic from the `topic` column, so one query writes both topics, and
# MAGIC a camera's frames stay in order (one task per Kafka partition). The cascade is loaded
# MAGIC here once on the driver too: a cascade that cannot load stops this cell, before any
# MAGIC query starts.

# COMMAND ----------

# DBTITLE 1,The function Spark runs
import pyarrow as pa

SINK_SCHEMA = (
    "key binary, value binary, headers array<struct<key: string, value: binary>>, topic string"
)
ARROW_SCHEMA = pa.schema([
    ("key", pa.binary()), ("value", pa.binary()),
    ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
    ("topic", pa.string()),
])  # fmt: skip
SETTINGS = PRESETS[preset]
OUTPUT, DEAD_LETTERS, LIMIT = output_topic, dead_letter_topic, output_limit
classifier(SETTINGS["cascade"])


def process_batches(batches):
    for batch in batches:
        rows = {"key": [], "value": [], "headers": [], "topic": []}
        for key, value, headers in zip(
            batch.column("key").to_pylist(),
            batch.column("value").to_pylist(),
            batch.column("headers").to_pylist(),
            strict=True,
        ):
            pairs = [(h["key"], h["value"]) for h in headers or []]
            topic, out_key, out_value, out_headers = frame_or_dead_letter(
                key, value, pairs, SETTINGS, LIMIT, OUTPUT, DEAD_LETTERS
            )
            rows["key"].append(out_key)
            rows["value"].append(out_value)
            rows["headers"].append([{"key": n, "value": v} for n, v in out_headers])
            rows["topic"].append(topic)
        yield pa.RecordBatch.from_pydict(rows, schema=ARROW_SCHEMA)


# COMMAND ----------

# MAGIC %md
# MAGIC ## Reading the frames: `readStream` from Kafka, with headers
# MAGIC
# MAGIC `includeHeaders` brings the frame's metadata along. `failOnDataLoss` is off: a live
# MAGIC video job should start even when old frames have aged out of the topic.
# MAGIC `maxOffsetsPerTrigger` bounds a micro-batch, so that a backlog is worked off in steps.

# COMMAND ----------

# DBTITLE 1,Read the frames
frames = (
    spark.readStream.format("kafka")
    .options(**kafka_options)
    .option("subscribe", input_topic)
    .option("startingOffsets", dbutils.widgets.get("starting_offsets"))
    .option("includeHeaders", "true")
    .option("failOnDataLoss", "false")
    .option("maxOffsetsPerTrigger", "200")
    .option("kafka.max.partition.fetch.bytes", str(2 * 1024 * 1024))
    .load()
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Writing the results: `writeStream` to Kafka, with a checkpoint
# MAGIC
# MAGIC The checkpoint records which offsets were processed: a restarted query goes on where
# MAGIC it stopped (frames in flight at a crash are written again: at-least-once; the
# MAGIC viewers show each frame once). The producer waits for every in-sync replica and is
# MAGIC idempotent, and its requests may be as large as the largest record.

# COMMAND ----------

# DBTITLE 1,Write the results
query = (
    frames.select("key", "value", "headers")
    .mapInArrow(process_batches, SINK_SCHEMA)
    .writeStream.format("kafka")
    .options(**kafka_options)
    .option("checkpointLocation", checkpoint)
    .option("kafka.acks", "all")
    .option("kafka.enable.idempotence", "true")
    .option("kafka.max.request.size", str(16 * 1024 * 1024))
    .queryName(f"faces-{input_topic}-to-{output_topic}")
    .start()
)
print(f"started {query.name}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Progress
# MAGIC
# MAGIC One line per micro-batch: frames read and how long the batch took. Stop the query with
# MAGIC the cell's stop button, or `query.stop()`. The lines are printed: `display` renders
# MAGIC DataFrames and refuses a plain string (`Cannot call display(<class 'str'>)`).
# MAGIC A query that stopped with an error (an `EnvironmentFailure` such as a cascade that
# MAGIC no worker can load) makes this cell fail with that cause.

# COMMAND ----------

# DBTITLE 1,Progress
seconds = float(dbutils.widgets.get("progress_seconds"))
deadline = time.monotonic() + seconds if seconds > 0 else None
last_batch = -1
while query.isActive and (deadline is None or time.monotonic() < deadline):
    query.awaitTermination(5)
    for progress in query.recentProgress:
        batch = progress["batchId"]
        # Summed over the sources: over Spark Connect (serverless, standard access mode) the
        # top-level numInputRows arrives empty (Spark 4.2), the sources' counts do not.
        rows = sum(source["numInputRows"] for source in progress["sources"])
        if batch > last_batch and rows:
            duration = progress["durationMs"].get("triggerExecution", 0)
            print(f"batch {batch}: {rows} frames in {duration} ms")
        last_batch = max(last_batch, batch)
