"""camstream: real-time video analytics on Apache Kafka and Spark Structured Streaming.

The rooms: `core` (frame contract, JPEG, detection, the per-frame and per-record
functions), `cameras` (capture and simulated cameras), `kafka` (clients, topics,
publishing, consuming), `spark` (the streaming job), `viewers` (console, browser
station), `local` (brokers, Spark cluster, the demo), with `config`, `errors` and `cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("camstream")
except PackageNotFoundError:  # imported from a source tree or a zip (Spark executors)
    __version__ = "0+unknown"
