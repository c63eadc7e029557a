"""Kafka: clients for frame-sized records, topics, publishing frames, consuming results."""
