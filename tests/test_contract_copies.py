"""The frame contract's copies agree with its single source, `core/contract.json`.

Python reads the source and the Java function's constants are generated from it at build
time; the Databricks notebook runs without camstream, so it keeps a copy of the rules in one
marked block of its contract cell, read here with `ast` (nothing of it runs). A change to
the contract fails here until the copy follows.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from camstream.core import contract
from camstream.core.contract import CONTRACT, LIMITS
from camstream.spark.jars import contract_spec_java

NOTEBOOK = Path(__file__).resolve().parent.parent / "databricks" / "KafkaStructStream.py"
COPY_START = "# ---- the contract's rules: a copy of camstream's contract.json"
COPY_END = "# ---- end of the copy ----"
# Values a restated limit would show anywhere else in the notebook's code.
LIMIT_NAMES = ("max_header_int", "max_jpeg_side", "max_frame_pixels", "max_error_bytes")
ARITHMETIC = (
    *(ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop),
    *(ast.Tuple, ast.Dict, ast.Starred, ast.Name, ast.Load),
)


def notebook_copy() -> tuple[dict[str, Any], str]:
    """The constants of the notebook's marked block (arithmetic on literals and on the
    block's earlier constants, nothing else), and the notebook's code outside it."""
    source = NOTEBOOK.read_text()
    start, end = source.index(COPY_START), source.index(COPY_END)
    constants: dict[str, Any] = {}
    for node in ast.parse(source[start:end]).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        (target,) = node.targets
        assert isinstance(target, ast.Name), ast.unparse(node)
        assert all(isinstance(part, ARITHMETIC) for part in ast.walk(node.value)), ast.unparse(node)
        expression = ast.Expression(node.value)
        constants[target.id] = eval(compile(expression, NOTEBOOK.name, "eval"), {}, constants)
    rest = source[:start] + source[end:]
    code = "\n".join(line for line in rest.splitlines() if not line.startswith("# MAGIC"))
    return constants, code


def test_the_databricks_notebooks_copy_of_the_contract_is_the_source() -> None:
    copy, _ = notebook_copy()
    rules = {spec["name"]: spec for spec in CONTRACT["input_headers"]}
    assert copy["SCHEMA_VERSION"] == CONTRACT["schema_version"]
    assert copy["CONTRACT"] == tuple(rules)  # the names, in their order
    (text,) = [spec for spec in rules.values() if spec["rule"] == "text"]
    assert text["name"] == "camera_id"
    assert copy["CAMERA_ID_CHARS"] == (text["min_chars"], text["max_chars"])
    integers = {
        name: tuple(LIMITS[b] if isinstance(b, str) else b for b in (spec["min"], spec["max"]))
        for name, spec in rules.items()
        if spec["rule"] == "integer"
    }
    assert copy["WHOLE_NUMBERS"] == integers
    assert [spec["rule"] for spec in rules.values()] == ["text", *["integer"] * 4, "equals_version"]
    assert copy["LONG_MAX"] == LIMITS["max_header_int"]
    assert copy["MAX_SIDE"] == LIMITS["max_jpeg_side"]
    assert copy["MAX_PIXELS"] == LIMITS["max_frame_pixels"]
    assert copy["MAX_ERROR_BYTES"] == LIMITS["max_error_bytes"]
    assert copy["RESULT_HEADERS"] == tuple(h["name"] for h in CONTRACT["result_headers"])
    assert copy["DEAD_LETTER_HEADERS"] == tuple(h["name"] for h in CONTRACT["dead_letter_headers"])


def test_the_databricks_notebook_states_its_limits_only_in_its_copy() -> None:
    """A limit restated as a literal elsewhere in the notebook would not be checked."""
    _, code = notebook_copy()
    numbers = {
        node.value
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Constant) and type(node.value) is int
    }
    restated = {name for name in LIMIT_NAMES if LIMITS[name] in numbers}
    assert not restated, restated
    assert "8192" not in code and "2**63" not in code


def test_python_and_the_java_build_take_every_name_and_limit_from_the_source() -> None:
    java = contract_spec_java(CONTRACT)
    parts = ("input_headers", "result_headers", "dead_letter_headers")
    for spec in (spec for part in parts for spec in CONTRACT[part]):
        constant = f"H_{spec['name'].upper()}"
        assert getattr(contract, constant) == spec["name"]
        assert f'static final String {constant} = "{spec["name"]}";' in java
    for name, limit in CONTRACT["limits"].items():
        assert getattr(contract, name.upper()) == limit["value"]
        assert f"static final long {name.upper()} = {limit['value']}L;" in java
    ours = {h["name"] for h in (*CONTRACT["result_headers"], *CONTRACT["dead_letter_headers"])}
    assert ours == contract.RESULT_NAMES


def test_the_java_sources_state_no_header_name_or_limit_of_their_own() -> None:
    """Every name and limit the Java function uses comes from the generated ContractSpec."""
    sources = Path(contract.__file__).parent.parent / "spark" / "realtime" / "src"
    names = {
        spec["name"]
        for part in ("input_headers", "result_headers", "dead_letter_headers")
        for spec in CONTRACT[part]
    }
    limits = {str(limit["value"]) for limit in CONTRACT["limits"].values()}
    for path in sorted(sources.rglob("*.java")):
        text = path.read_text()
        quoted = set(re.findall(r'"([a-z_]+)"', text))
        assert not quoted & names, (path.name, quoted & names)
        numbers = set(re.findall(r"\b\d+\b", text))
        assert not numbers & limits - {"16"}, (path.name, numbers & limits)
