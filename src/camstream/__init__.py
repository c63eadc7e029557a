"""camstream: real-time video analytics on Apache Kafka and Spark Structured Streaming."""

__version__ = "0.1.0"
