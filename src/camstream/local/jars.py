"""Java-side dependencies: the Kafka broker and Spark's Kafka connector, from Maven Central.

Jars are resolved with Maven into a cache outside the repository (`CAMSTREAM_CACHE`,
default ~/.cache/camstream) once; later runs find them there and work offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from camstream.config import Config
from camstream.errors import DependencyError

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
COMPLETE_MARKER = ".complete"


def cache_dir(cfg: Config | None = None) -> Path:
    return (cfg or Config.from_env()).cache_path


def _pom(name: str) -> Path:
    return Path(str(resources.files("camstream.local").joinpath("maven", name)))


def pom_property(name: str, prop: str) -> str:
    match = re.search(rf"<{re.escape(prop)}>([^<]+)</{re.escape(prop)}>", _pom(name).read_text())
    if not match:
        raise DependencyError(f"{name} has no <{prop}>")
    return match.group(1).strip()


def kafka_version() -> str:
    return pom_property("kafka-broker.pom.xml", "kafka.version")


def spark_version() -> str:
    return pom_property("spark-kafka.pom.xml", "spark.version")


def java_executable() -> str:
    """The `java` to run the broker with: $JAVA_HOME/bin/java, else `java` on PATH; 17+."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise DependencyError(
            "Java 17 or newer is required but was not found: install a JDK (e.g. `apt-get install"
            " openjdk-17-jre-headless`) or set JAVA_HOME"
        )
    major = java_major_version(candidate)
    if major < 17:
        raise DependencyError(
            f"{candidate} is Java {major}; Kafka 4 and Spark 4 need Java 17 or newer"
            " (set JAVA_HOME)"
        )
    return candidate


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise DependencyError(f"cannot tell the version of {java}: {out.stderr.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _resolve(pom_name: str, target: Path, label: str) -> Path:
    """Copy the POM's runtime dependencies into `target` with Maven, once."""
    if (target / COMPLETE_MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise DependencyError(
            f"Maven (`mvn`) is needed once to download {label} from Maven Central:"
            " install it (e.g. `apt-get install maven`)"
        )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    print(f"camstream: resolving {label} from Maven Central into {target}", file=sys.stderr)
    cmd = [
        mvn,
        "-B",  # batch mode still prints one 'Downloading/Downloaded' line per file: our progress
        "-f",
        str(_pom(pom_name)),
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    _maven(cmd, label, partial)
    return _complete(partial, target, cmd, label)


def _maven(cmd: list[str], label: str, partial: Path) -> None:
    """Run Maven, showing each download as it happens; a failure says why."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-29:], line.rstrip()]
        if "Downloaded from" in line or "ERROR" in line:
            print("  " + line.strip().replace("[INFO] ", ""), file=sys.stderr, flush=True)
    if proc.wait() != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise DependencyError(
            f"Maven could not make {label} (exit {proc.returncode}):\n" + "\n".join(tail)
        )


def _complete(partial: Path, target: Path, cmd: list[str], label: str) -> Path:
    """Move a finished folder into place (a crash halfway leaves only the partial one)."""
    (partial / COMPLETE_MARKER).write_text(" ".join(cmd) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    jars = sorted(target.glob("*.jar"))
    print(f"camstream: {label}: {len(jars)} jars ready", file=sys.stderr)
    return target


def kafka_jars_dir(cfg: Config | None = None) -> Path:
    """The official Apache Kafka broker jars (kafka_2.13 and its runtime dependencies)."""
    version = kafka_version()
    return _resolve("kafka-broker.pom.xml", cache_dir(cfg) / f"kafka-{version}", f"Kafka {version}")


def spark_kafka_jars(cfg: Config | None = None) -> list[str]:
    """Spark's Kafka connector jars that pyspark does not already ship, as local paths."""
    import pyspark

    version = spark_version()
    if pyspark.__version__ != version:
        raise DependencyError(
            f"pyspark is {pyspark.__version__} but the Kafka connector is pinned to {version}:"
            " they must match (reinstall with `pip install -r requirements.txt`)"
        )
    folder = _resolve(
        "spark-kafka.pom.xml",
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
    import hashlib

    import cv2

    from camstream.spark.job import REALTIME_CASCADES

    module = Path(str(resources.files("camstream.spark").joinpath("realtime")))
    sources = sorted(p for p in module.rglob("*") if p.is_file() and p.suffix in (".java", ".xml"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes())
    target = cache_dir(cfg) / f"realtime-{digest.hexdigest()[:12]}"
    if not (target / COMPLETE_MARKER).exists():
        mvn = shutil.which("mvn")
        if not mvn:
            raise DependencyError(
                "Maven (`mvn`) is needed once to build the Real-time Mode UDF: install it"
                " (e.g. `apt-get install maven`)"
            )
        label = "the Real-time Mode UDF (Java) and OpenCV's Java jar"
        print(f"camstream: building {label} into {target}", file=sys.stderr)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
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
        _maven(cmd, label, partial)
        shutil.copy(build / "target" / "camstream-realtime.jar", partial)
        shutil.rmtree(build)
        _complete(partial, target, cmd, label)
    return [str(p) for p in sorted(target.glob("*.jar"))]


def ensure_all(cfg: Config | None = None) -> None:
    """Everything the local stack needs, for `camstream setup`."""
    java_executable()
    kafka_jars_dir(cfg)
    jars = spark_kafka_jars(cfg)
    print(f"camstream: Spark Kafka connector jars: {len(jars)}", file=sys.stderr)
    realtime = realtime_jars(cfg)
    print(f"camstream: Real-time Mode jars: {len(realtime)}", file=sys.stderr)
