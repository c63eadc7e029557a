"""The reference demo's design, rebuilt for comparison only: never used by the product.

- the producer pickles each raw decoded frame, base64-encodes it into a JSON message and
  flushes after every send;
- the Spark job parses the JSON in a row-at-a-time Python UDF, unpickles the frame, builds
  a new CascadeClassifier for every frame, detects, draws, and pickles the result back.

Pickle appears here only because the reference used it; the data is the benchmark's own.
"""

from __future__ import annotations

import base64
import json
import pickle
import time
from typing import Any

import numpy as np

from camstream.config import Config
from camstream.kafka.clients import make_producer


def encode_message(camera_id: str, seq: int, frame_bgr: np.ndarray) -> bytes:
    return json.dumps(
        {
            "camera_id": camera_id,
            "seq": seq,
            "capture_ts_ns": time.time_ns(),
            "frame": base64.b64encode(pickle.dumps(frame_bgr)).decode(),
        }
    ).encode()


def publish_frames(cfg: Config, topic: str, frames: list[np.ndarray], count: int) -> float:
    """Publish `count` frames the reference way; returns frames/s of the producer."""
    producer = make_producer(cfg, max_request_size=4 * 1024 * 1024)
    started = time.perf_counter()
    for seq in range(count):
        producer.send(
            topic, key=b"ref-cam", value=encode_message("ref-cam", seq, frames[seq % len(frames)])
        )
        producer.flush()  # the reference flushed after every frame
    elapsed = time.perf_counter() - started
    producer.close()
    return count / elapsed


def build_reference_query(
    spark: Any, cfg: Config, input_topic: str, output_topic: str, checkpoint: str
) -> Any:
    from pyspark.sql import functions as F

    cascade_name = cfg.detection.cascade
    scale_factor, min_neighbors = cfg.detection.scale_factor, cfg.detection.min_neighbors

    def analyze(message: bytes) -> bytes:
        import base64 as b64
        import json as js
        import pickle as pk

        import cv2

        record = js.loads(message)
        frame = pk.loads(b64.b64decode(record["frame"]))
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + cascade_name)  # per frame
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in classifier.detectMultiScale(grey, scale_factor, min_neighbors):
            cv2.rectangle(frame, (int(x), int(y)), (int(x + w), int(y + h)), (0, 255, 0), 2)
        record["frame"] = b64.b64encode(pk.dumps(frame)).decode()
        record["analyzed_ts_ns"] = __import__("time").time_ns()
        return js.dumps(record).encode()

    analyze_udf = F.udf(analyze, "binary", useArrow=False)  # row at a time, pickled rows
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .option("subscribe", input_topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", "40")  # bounded, unlike the reference, to fit in memory
        .option("kafka.max.partition.fetch.bytes", str(8 * 1024 * 1024))
        .load()
    )
    return (
        source.select(F.col("key"), analyze_udf("value").alias("value"))
        .writeStream.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .option("kafka.max.request.size", str(8 * 1024 * 1024))
        .option("topic", output_topic)
        .option("checkpointLocation", checkpoint)
        .start()
    )


def analyzed_times(records: list[Any]) -> list[int]:
    return [json.loads(r.value)["analyzed_ts_ns"] for r in records]
