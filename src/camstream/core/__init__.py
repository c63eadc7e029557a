"""The core: the frame contract and the per-frame and per-record functions.

Plain Python over bytes and numpy, with OpenCV. Nothing here knows Kafka or Spark, which
wrap it; this package (with `camstream.errors` and `camstream.spark.worker`) is all that
Spark ships to its executors.
"""
