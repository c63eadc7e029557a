"""The pinned jar versions agree with each other and with the installed pyspark."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pyspark

from camstream.spark.jars import spark_version


def test_every_spark_pin_matches_pyspark() -> None:
    # Spark's jars must come from one release: the Kafka connector's pom, the Real-time Mode
    # module's pom and pyspark itself.
    realtime_pom = Path(str(resources.files("camstream.spark").joinpath("realtime", "pom.xml")))
    match = re.search(r"<spark.version>([^<]+)</spark.version>", realtime_pom.read_text())
    assert match, "the Real-time Mode pom pins no spark.version"
    assert match.group(1) == spark_version() == pyspark.__version__
