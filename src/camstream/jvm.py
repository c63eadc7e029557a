"""The JVM toolchain both JVM rooms share: finding Java 17+, and Maven into the jar cache.

Two rooms need jars from Maven Central: `spark/` (Spark's Kafka connector and the Java
per-record function it builds, `camstream.spark.jars`) and `local/` (the Kafka broker,
`camstream.local.jars`). `local/` may build on `spark/`, never the reverse; a broker has
nothing to do with Spark, so the generic part lives here, beside `config` and `errors`,
where both can use it without either importing the other.

Jars are resolved into a cache outside the repository (`CAMSTREAM_CACHE`, default
~/.cache/camstream) once; later runs find them there and work offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from camstream.config import Config
from camstream.errors import DependencyError

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Written last into a finished folder of the cache: a folder without it is redone.
COMPLETE_MARKER = ".complete"


def cache_dir(cfg: Config | None = None) -> Path:
    return (cfg or Config.from_env()).cache_path


def pom_property(pom: Path, prop: str) -> str:
    match = re.search(rf"<{re.escape(prop)}>([^<]+)</{re.escape(prop)}>", pom.read_text())
    if not match:
        raise DependencyError(f"{pom.name} has no <{prop}>")
    return match.group(1).strip()


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


def maven_executable(label: str) -> str:
    """`mvn`, needed once to make `label`."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise DependencyError(
            f"Maven (`mvn`) is needed once to make {label} from Maven Central:"
            " install it (e.g. `apt-get install maven`)"
        )
    return mvn


def resolve_pom(pom: Path, target: Path, label: str) -> Path:
    """Copy the POM's runtime dependencies into `target` with Maven, once."""
    if (target / COMPLETE_MARKER).exists():
        return target
    mvn = maven_executable(label)
    partial = partial_dir(target)
    print(f"camstream: resolving {label} from Maven Central into {target}", file=sys.stderr)
    cmd = [
        mvn,
        "-B",  # batch mode still prints one 'Downloading/Downloaded' line per file: our progress
        "-f",
        str(pom),
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    run_maven(cmd, label, partial)
    return complete(partial, target, cmd, label)


def partial_dir(target: Path) -> Path:
    """A fresh folder beside `target` to make it in (moved into place by `complete`)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def run_maven(cmd: list[str], label: str, partial: Path) -> None:
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


def complete(partial: Path, target: Path, cmd: list[str], label: str) -> Path:
    """Move a finished folder into place (a crash halfway leaves only the partial one)."""
    (partial / COMPLETE_MARKER).write_text(" ".join(cmd) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    jars = sorted(target.glob("*.jar"))
    print(f"camstream: {label}: {len(jars)} jars ready", file=sys.stderr)
    return target
