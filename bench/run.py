"""camstream benchmark: every figure measured side by side in one run, on this machine.

    .venv/bin/python bench/run.py                        # every scenario (see bench/README.md)
    .venv/bin/python bench/run.py --quick --out /tmp/b   # a smoke run: short and small
    .venv/bin/python bench/run.py --scenarios same-work,pipelines --out /tmp/b  # some
    .venv/bin/python bench/run.py --list                 # what there is

Writes bench/results/results.json, whole: the commit, machine and time of the run and every
scenario's figures (the documents' tables are generated from it: bench/docs_tables.py), a
plot, prints the tables, and shows progress. A run of some scenarios, or a quick one, goes
to another folder (`--out`). The scenarios live in bench/scenarios.py, registered by name;
the report in bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: F401  (registers the scenarios)
from docs_tables import BENCH_VERSION
from registry import SCENARIOS, Context, say
from report import plot, render_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def source_commit() -> str:
    """The commit the figures were measured on ("+changes" if the tree differs from it)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return run.stdout.strip() if run.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--scenarios", default="all", help="comma-separated names, or all")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved rounds of every ratio and delay"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.list:
        for item in SCENARIOS.values():
            print(f"{item.name:10}  {item.help}")
        return 0
    wanted = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; --list shows them")
    if (args.quick or wanted != list(SCENARIOS)) and args.out.resolve() == RESULTS_DIR.resolve():
        parser.error(
            f"{RESULTS_DIR / 'results.json'} holds one whole run of every scenario: write a"
            " quick run, or some scenarios, elsewhere (--out DIR)"
        )
    ctx = Context(quick=args.quick, repeats=1 if args.quick else args.repeats)
    ctx.results.update(
        {
            "machine": ctx.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "commit": source_commit(),
            "quick": args.quick,
            "repeats": ctx.repeats,
            "bench_version": BENCH_VERSION,
        }
    )
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for name in SCENARIOS:  # registration order, whatever order they were asked in
            if name in wanted:
                started = time.monotonic()
                SCENARIOS[name].run(ctx)
                # How long each took: what the next run will take, roughly.
                took = round(time.monotonic() - started)
                ctx.results.setdefault("scenario_seconds", {})[name] = took
                say(f"{name}: {took} s")
    finally:
        ctx.close()
    results_file = args.out / "results.json"
    results = ctx.results
    results_file.write_text(json.dumps(results, indent=2))
    plot(results, args.out)
    print(render_table(results))
    say(f"results in {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
