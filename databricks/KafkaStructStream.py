# Databricks notebook source
# MAGIC %md
# MAGIC # Face detection on camera streams with Structured Streaming
# MAGIC
# MAGIC The middle of the pipeline: read JPEG frames from the Kafka topic `camera-stream`,
# MAGIC detect faces with an OpenCV Haar cascade, draw the boxes, and write the annotated JPEG
# MAGIC to `camera-analytics-stream`; a record that cannot be processed goes to the
# MAGIC dead-letter topic with the reason, and the stream goes on.
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
# MAGIC Kafka's address has no default: set `kafka_bootstrap_servers`. The checkpoint keeps the
# MAGIC query's offsets; it defaults to a Unity Catalog volume, one folder per pair of topics.
# MAGIC Credentials come from a secret scope, never from a widget: put the whole
# MAGIC `sasl.jaas.config` line in a secret, e.g. for Confluent Cloud
# MAGIC `kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule required
# MAGIC username="<key>" password="<secret>";`.

# COMMAND ----------

dbutils.widgets.text("kafka_bootstrap_servers", "", "Kafka bootstrap servers (host:port,...)")
dbutils.widgets.text("input_topic", "camera-stream", "Input topic")
dbutils.widgets.text("output_topic", "camera-analytics-stream", "Output topic")
dbutils.widgets.text("dead_letter_topic", "camera-stream-dlq", "Dead-letter topic")
dbutils.widgets.text(
    "checkpoint_root", "/Volumes/main/default/camstream/checkpoints", "Checkpoint folder"
)
dbutils.widgets.dropdown("starting_offsets", "latest", ["latest", "earliest"], "Starting offsets")
dbutils.widgets.dropdown("preset", "faithful", ["faithful", "fast"], "Detection preset")
dbutils.widgets.dropdown(
    "security_protocol", "SASL_SSL", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], "Security"
)
dbutils.widgets.dropdown(
    "sasl_mechanism", "PLAIN", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "SASL mechanism"
)
dbutils.widgets.text("secret_scope", "camstream", "Secret scope of the JAAS line")
dbutils.widgets.text("secret_key", "kafka-jaas", "Secret key of the JAAS line")
dbutils.widgets.text("max_message_bytes", "1016384", "Output topic's max.message.bytes")
dbutils.widgets.text("progress_seconds", "60", "Show progress for (s, 0: until stopped)")

bootstrap = dbutils.widgets.get("kafka_bootstrap_servers").strip()
if not bootstrap:
    raise ValueError("set the kafka_bootstrap_servers widget to your brokers (host:port,...)")
input_topic = dbutils.widgets.get("input_topic")
output_topic = dbutils.widgets.get("output_topic")
dead_letter_topic = dbutils.widgets.get("dead_letter_topic")
checkpoint = f"{dbutils.widgets.get('checkpoint_root').rstrip('/')}/{input_topic}--{output_topic}"
preset = dbutils.widgets.get("preset")
output_limit = int(dbutils.widgets.get("max_message_bytes"))

# Options for the Kafka source and sink alike: the address and, if any, the security.
kafka_options = {"kafka.bootstrap.servers": bootstrap}
protocol = dbutils.widgets.get("security_protocol")
kafka_options["kafka.security.protocol"] = protocol
if protocol.startswith("SASL_"):
    kafka_options["kafka.sasl.mechanism"] = dbutils.widgets.get("sasl_mechanism")
    kafka_options["kafka.sasl.jaas.config"] = dbutils.secrets.get(
        dbutils.widgets.get("secret_scope"), dbutils.widgets.get("secret_key")
    )
print(f"{input_topic} -> {output_topic} (dead letters: {dead_letter_topic}), preset {preset}")
print(f"checkpoint {checkpoint}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## The per-frame function
# MAGIC
# MAGIC Plain Python over bytes and numpy: it knows nothing of Spark or Kafka. A record is
# MAGIC checked against the frame contract (the key is the camera id, the headers are
# MAGIC `camera_id`, `seq`, `capture_ts_ns`, `width`, `height`, `schema_version`, the value a
# MAGIC complete JPEG of that size), the faces are detected on a grey copy, the boxes drawn,
# MAGIC and the frame re-encoded. Anything wrong with a record raises, and the caller turns
# MAGIC that into a dead letter with the reason.
# MAGIC
# MAGIC `faithful` is the reference demo's detector (`haarcascade_frontalface_alt`, scale factor
# MAGIC 1.1, 5 neighbours, 30 px faces, on the full frame); `fast` detects on a 320 px wide copy.

# COMMAND ----------

import json
import sys
import time
import types

import cv2
import numpy as np

CONTRACT = ("camera_id", "seq", "capture_ts_ns", "width", "height", "schema_version")
RESULTS = ("faces", "boxes_xyxy", "analyzed_ts_ns", "error", "failed_ts_ns", "skipped", "fitted")
PRESETS = {
    "faithful": {"cascade": "haarcascade_frontalface_alt.xml", "scale": 1.1, "neighbours": 5,
                 "min_size": 30, "width": None},
    "fast": {"cascade": "haarcascade_frontalface_default.xml", "scale": 1.2, "neighbours": 5,
             "min_size": 24, "width": 320},
}  # fmt: skip
LONG_MAX = 2**63 - 1


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
    if values["schema_version"] != "1":
        raise BadRecord(f"unsupported schema_version {values['schema_version']!r}")
    return values


def whole_number(values, name, low, high=LONG_MAX):
    text = values[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise BadRecord(
            f"header {name!r} is not a whole number from {low} to {high}: {text[:30]!r}"
        )
    return int(text)


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


def worker_cache():
    """Per Python worker: Spark reuses workers, so the classifier is loaded once each."""
    cache = sys.modules.get("camera_stream_worker_cache")
    if cache is None:
        cache = types.ModuleType("camera_stream_worker_cache")
        cache.classifiers = {}
        cv2.setNumThreads(1)  # Spark already runs one task per core
        sys.modules["camera_stream_worker_cache"] = cache
    return cache


def classifier(name):
    classifiers = worker_cache().classifiers
    if name not in classifiers:
        loaded = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if loaded.empty():
            raise RuntimeError(f"cannot load {name}")
        classifiers[name] = loaded
    return classifiers[name]


def detect(grey, settings, full_width, full_height):
    """Boxes [x1, y1, x2, y2] in full-frame pixels, found on a grey (maybe smaller) copy."""
    if settings["width"] and grey.shape[1] > settings["width"]:
        small = (
            settings["width"],
            max(1, round(grey.shape[0] * settings["width"] / grey.shape[1])),
        )
        grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA)
    scale = full_width / grey.shape[1]
    side = max(1, round(settings["min_size"] / scale))
    found = classifier(settings["cascade"]).detectMultiScale(
        cv2.equalizeHist(grey), scaleFactor=settings["scale"],
        minNeighbors=settings["neighbours"], minSize=(side, side),
    )  # fmt: skip
    boxes = []
    for x, y, w, h in np.asarray(found, dtype=np.float64) * scale if len(found) else []:
        box = np.rint([x, y, x + w, y + h]).astype(int)
        boxes.append([int(min(max(v, 0), full_width if i % 2 == 0 else full_height))
                      for i, v in enumerate(box)])  # fmt: skip
    return boxes


def analyse(key, value, headers, settings, output_limit):
    """One record in; (key, annotated JPEG, output headers) out, or BadRecord raised."""
    values = header_values(headers)
    camera_id = values["camera_id"]
    if not 1 <= len(camera_id) <= 255:
        raise BadRecord("camera_id must be 1-255 characters")
    if key is None or bytes(key) != camera_id.encode():
        raise BadRecord("the record key must be the camera id (it keeps a camera in order)")
    for name in ("seq", "capture_ts_ns"):
        whole_number(values, name, 0)
    width, height = (
        whole_number(values, "width", 1, 65535),
        whole_number(values, "height", 1, 65535),
    )
    if value is None or not value:
        raise BadRecord("empty frame value")
    real_width, real_height, end = jpeg_size_and_end(bytes(value))
    if (real_width, real_height) != (width, height):
        raise BadRecord(f"headers say {width}x{height}, the JPEG is {real_width}x{real_height}")
    if width * height > 8192 * 8192:
        raise BadRecord("frame exceeds 8192x8192 pixels")
    jpeg = np.frombuffer(value, np.uint8)[:end]
    as_stored = cv2.IMREAD_IGNORE_ORIENTATION  # pixels as stored: EXIF rotation ignored
    grey_flags = cv2.IMREAD_GRAYSCALE
    if settings["width"]:  # JPEG decodes at 1/2, 1/4 or 1/8 size far cheaper than in full
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
                                (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                                (2, cv2.IMREAD_REDUCED_GRAYSCALE_2)):  # fmt: skip
            if width // factor >= settings["width"]:
                grey_flags = reduced
                break
    grey = cv2.imdecode(jpeg, grey_flags | as_stored)
    if grey is None:
        raise BadRecord("JPEG could not be decoded")
    boxes = detect(grey, settings, width, height)
    out = bytes(value[:end])
    if boxes:
        frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR | as_stored)
        thickness = max(2, round(min(width, height) / 240))
        for x1, y1, x2, y2 in boxes:
            cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 0, 255), thickness)
        for quality in (80, 70, 60, 50, 40):  # the lowest that still fits the output topic
            out = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
            if len(out) + 16384 <= output_limit:
                break
    if len(out) + 16384 > output_limit:
        raise BadRecord(f"annotated frame of {len(out)} bytes does not fit the output topic")
    kept = [(n, bytes(v)) for n, v in headers if v is not None and n not in RESULTS]
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


# COMMAND ----------

# MAGIC %md
# MAGIC ## The function Spark runs: Arrow batches in, one row out per record
# MAGIC
# MAGIC `mapInArrow` hands each Python worker its partition's records as Arrow batches, so
# MAGIC the classifier stays loaded between batches and records are not converted one by one.
# MAGIC Each input row gives exactly one output row: the annotated frame for the output
# MAGIC topic, or the record as it came, with `error` and `failed_ts_ns` headers, for the
# MAGIC dead-letter topic. The sink picks the topic from the `topic` column, so one query
# MAGIC writes both, and a camera's frames stay in order (one task per Kafka partition).

# COMMAND ----------

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
            try:
                out_key, out_value, out_headers = analyse(key, value, pairs, SETTINGS, LIMIT)
                topic = OUTPUT
            except Exception as exc:  # one bad record never stops the stream
                reason = f"{type(exc).__name__}: {exc}"[:1000]
                out_key, out_value, topic = key, value, DEAD_LETTERS
                out_headers = [*pairs, ("error", reason.encode("utf-8", "replace")),
                               ("failed_ts_ns", str(time.time_ns()).encode())]  # fmt: skip
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

# COMMAND ----------

seconds = float(dbutils.widgets.get("progress_seconds"))
deadline = time.monotonic() + seconds if seconds > 0 else None
last_batch = -1
while query.isActive and (deadline is None or time.monotonic() < deadline):
    query.awaitTermination(5)
    for progress in query.recentProgress:
        batch = progress["batchId"]
        if batch > last_batch and progress.get("numInputRows"):
            duration = progress["durationMs"].get("triggerExecution", 0)
            print(f"batch {batch}: {progress['numInputRows']} frames in {duration} ms")
        last_batch = max(last_batch, batch)
