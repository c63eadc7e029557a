"""Spark: the session, the streaming job, its executor side and packaging, its progress."""
