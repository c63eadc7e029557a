"""The Spark job's jars: Spark's Kafka connector, and the Java per-record function built here.

The connector is resolved from Maven Central (`maven/spark-kafka.pom.xml`); the Java
function (`realtime/`, for Real-time Mode) is built with Maven from its sources. Both go
into the jar cache (`camstream.jvm`), once per version.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from importlib import resources
from pathlib import Path

from camstream.config import Config
from camstream.errors import DependencyError
from camstream.jvm import (
    COMPLETE_MARKER,
    MAVEN_DEPENDENCY_PLUGIN,
    cache_dir,
    complete,
    maven_executable,
    partial_dir,
    pom_property,
    resolve_pom,
    run_maven,
)

SPARK_KAFKA_POM = "spark-kafka.pom.xml"


def _pom(name: str) -> Path:
    return Path(str(resources.files("camstream.spark").joinpath("maven", name)))


def spark_version() -> str:
    return pom_property(_pom(SPARK_KAFKA_POM), "spark.version")


def spark_kafka_jars(cfg: Config | None = None) -> list[str]:
    """Spark's Kafka connector jars that pyspark does not already ship, as local paths."""
    import pyspark

    version = spark_version()
    if pyspark.__version__ != version:
        raise DependencyError(
            f"pyspark is {pyspark.__version__} but the Kafka connector is pinned to {version}:"
            " they must match (reinstall with `pip install -r requirements.txt`)"
        )
    folder = resolve_pom(
        _pom(SPARK_KAFKA_POM),
        cache_dir(cfg) / f"spark-sql-kafka-{version}",
        f"Spark Kafka connector {version}",
    )
    bundled = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    # Jars pyspark already ships (Scala, Hadoop client, compression) would clash on the classpath.
    return [str(p) for p in sorted(folder.glob("*.jar")) if _artifact(p.name) not in bundled]


def _artifact(jar_name: str) -> str:
    """'kafka-clients-3.9.2.jar' -> 'kafka-clients'."""
    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar_name)


def realtime_jars(cfg: Config | None = None) -> list[str]:
    """The Real-time Mode UDF (built here from its Java sources) and OpenCV's Java jar.

    Built once per version of the sources, with Maven, into the cache; the Haar cascades of
    the Python OpenCV go into the jar, so that executors need nothing else.
    """
    import cv2

    from camstream.spark.job import REALTIME_CASCADES

    module = Path(str(resources.files("camstream.spark").joinpath("realtime")))
    sources = sorted(p for p in module.rglob("*") if p.is_file() and p.suffix in (".java", ".xml"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes())
    target = cache_dir(cfg) / f"realtime-{digest.hexdigest()[:12]}"
    if not (target / COMPLETE_MARKER).exists():
        label = "the Real-time Mode UDF (Java) and OpenCV's Java jar"
        mvn = maven_executable(label)
        print(f"camstream: building {label} into {target}", file=sys.stderr)
        partial = partial_dir(target)
        build = partial / "build"
        shutil.copytree(module, build)  # Maven writes target/ next to the sources
        (build / "cascades").mkdir()
        for name in REALTIME_CASCADES:
            shutil.copy(Path(cv2.data.haarcascades) / name, build / "cascades" / name)
        cmd = [
            mvn, "-B", "-f", str(build / "pom.xml"), "package",
            f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]  # fmt: skip
        run_maven(cmd, label, partial)
        shutil.copy(build / "target" / "camstream-realtime.jar", partial)
        shutil.rmtree(build)
        complete(partial, target, cmd, label)
    return [str(p) for p in sorted(target.glob("*.jar"))]
