"""The local stack: Kafka brokers and a Spark cluster from the official jars, the demo."""
