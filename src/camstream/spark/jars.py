"""The Spark job's jars: Spark's Kafka connector, and the Java per-record function built here.

The connector is resolved from Maven Central (`maven/spark-kafka.pom.xml`); the Java
function (`realtime/`, for Real-time Mode) is built with Maven from its sources and from
the frame contract's single source, `camstream/core/contract.json`: its `ContractSpec.java`
(header names, the input headers' rules, the limits) is generated from that file into the
build, so that the Java function states none of them itself. Both go into the jar cache
(`camstream.jvm`), once per version.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

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
# Where the build puts the generated constants (the realtime module's Java package).
CONTRACT_SPEC_JAVA = Path("src/main/java/camstream/realtime/ContractSpec.java")


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


def _contract_source() -> Path:
    return Path(str(resources.files("camstream.core").joinpath("contract.json")))


def realtime_jars(cfg: Config | None = None) -> list[str]:
    """The Real-time Mode UDF (built here from its Java sources) and OpenCV's Java jar.

    Built once per version of the sources and of the contract, with Maven, into the cache;
    the Haar cascades of the Python OpenCV go into the jar, so that executors need nothing
    else.
    """
    import cv2

    from camstream.spark.job import REALTIME_CASCADES

    module = Path(str(resources.files("camstream.spark").joinpath("realtime")))
    sources = sorted(p for p in module.rglob("*") if p.is_file() and p.suffix in (".java", ".xml"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(module)).encode() + b"\0" + path.read_bytes())
    # A change to the contract rebuilds the jar (and so does one to its generator).
    contract_text = _contract_source().read_bytes()
    digest.update(b"contract.json\0" + contract_text)
    digest.update(b"generator\0" + Path(__file__).read_bytes())
    target = cache_dir(cfg) / f"realtime-{digest.hexdigest()[:12]}"
    if not (target / COMPLETE_MARKER).exists():
        label = "the Real-time Mode UDF (Java) and OpenCV's Java jar"
        mvn = maven_executable(label)
        print(f"camstream: building {label} into {target}", file=sys.stderr)
        partial = partial_dir(target)
        build = partial / "build"
        shutil.copytree(module, build)  # Maven writes target/ next to the sources
        (build / CONTRACT_SPEC_JAVA).write_text(contract_spec_java(json.loads(contract_text)))
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


def contract_spec_java(contract: dict[str, Any]) -> str:
    """`ContractSpec.java`: the contract's names, rules and limits as Java constants.

    Generated (not parsed at run time) so that the function needs no JSON library and a
    contract the Java code does not follow fails its build: every header gets a constant
    (`H_` and its name in capitals), as in camstream.core.contract.
    """
    limits = {name: int(limit["value"]) for name, limit in contract["limits"].items()}

    def bound(value: int | str) -> str:  # a number, or the name of a limit
        return _upper(value) if isinstance(value, str) else f"{int(value)}L"

    headers = [*contract["input_headers"], *contract["result_headers"]]
    headers += contract["dead_letter_headers"]
    lines = [
        "package camstream.realtime;",
        "",
        "import java.util.List;",
        "import java.util.Set;",
        "",
        "/**",
        " * The frame contract's names, rules and limits, generated from",
        " * camstream/core/contract.json by camstream.spark.jars when the jar is built: edit that",
        " * file, not this one.",
        " */",
        "final class ContractSpec {",
        "  private ContractSpec() {}",
        "",
        f"  static final String SCHEMA_VERSION = {_java_string(contract['schema_version'])};",
        "",
    ]
    for name, value in limits.items():
        lines.append(f"  static final long {_upper(name)} = {value}L;")
    lines.append("")
    for header in headers:
        description = header.get("description", "")
        if description:
            lines.append(f"  /** {_javadoc(description)}. */")
        name = header["name"]
        lines.append(f"  static final String H_{_upper(name)} = {_java_string(name)};")

    def names(specs: list[dict[str, Any]]) -> str:
        return ", ".join(f"H_{_upper(spec['name'])}" for spec in specs)

    sources = [spec for spec in contract["dead_letter_headers"] if spec.get("source")]
    rules = []
    for spec in contract["input_headers"]:
        name = f"H_{_upper(spec['name'])}"
        if spec["rule"] == "text":
            low, high = f"{int(spec['min_chars'])}L", f"{int(spec['max_chars'])}L"
        elif spec["rule"] == "integer":
            low, high = bound(spec["min"]), bound(spec["max"])
        else:
            low, high = "0L", "0L"
        kind = _java_string(spec["rule"])
        rules.append(f"      new Contract.Rule({name}, {kind}, {low}, {high})")
    lines += [
        "",
        "  /** The input headers, in the order they are written. */",
        f"  static final List<String> INPUT = List.of({names(contract['input_headers'])});",
        "  /** The rule each input header obeys, in the order they are written. */",
        "  static final List<Contract.Rule> INPUT_RULES = List.of(",
        ",\n".join(rules) + ");",
        "  /** Where a dead letter's record was read: its Kafka coordinates and timestamp. */",
        f"  static final List<String> SOURCE = List.of({names(sources)});",
        "  /** The job's own headers: an input's headers of these names are not passed on. */",
        "  static final Set<String> RESULTS = Set.of(",
        f"      {names(contract['result_headers'])},",
        f"      {names(contract['dead_letter_headers'])});",
        "}",
        "",
    ]
    return "\n".join(lines)


def _upper(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise DependencyError(f"contract.json: {name!r} is no name for a Java constant")
    return name.upper()


def _java_string(text: str) -> str:
    return json.dumps(text)  # ASCII with \\uXXXX escapes: a valid Java string literal


def _javadoc(text: str) -> str:
    text = text.replace("*/", "*&#47;").rstrip(".")
    return text[:1].upper() + text[1:]
