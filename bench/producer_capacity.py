"""How many cameras one producer process sustains at 1 frame/s (640x480 sample frames).

    .venv/bin/python bench/producer_capacity.py              # a local broker, ramp to the limit
    .venv/bin/python bench/producer_capacity.py --brokers 3  # a three-broker cluster, RF 3

Each step runs the real `camstream simulate --cameras N --fps 1` for a fixed time as its
own process and counts a step as sustained when every frame was acknowledged, the worst
lag behind the schedule stayed under one frame period, and the command ended on time
(nothing left queued at the end). Stops at the first step that is not sustained.
Also run by `bench/run.py` as its `producer` scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from probes import free_port_block, process_rss_mb

STEPS = [250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def simulate_step(bootstrap: str, cameras: int, seconds: float, replication: int) -> dict[str, Any]:
    """One `camstream simulate` run on a fresh topic; its figures and CPU time."""
    from camstream.config import Config
    from camstream.kafka.clients import make_admin

    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CAMSTREAM_REPLICATION_FACTOR": str(replication)}
    cmd = [
        sys.executable, "-m", "camstream", "simulate", "--cameras", str(cameras), "--fps", "1",
        "--duration", str(seconds), "--input-topic", topic, "--kafka-bootstrap", bootstrap,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Sampled, not ru_maxrss: a forked child inherits the parent's high-water mark.
    peak_rss_mb = 0.0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        peak_rss_mb = max(peak_rss_mb, process_rss_mb(proc.pid))
        time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    found = re.search(r"sent (\d+) frames, (\d+) acknowledged, worst schedule lag (\d+) ms", stdout)
    sent, acked, lag_ms = (int(v) for v in found.groups()) if found else (0, 0, -1)
    expected = int(cameras * seconds)
    result = {
        "cameras": cameras,
        "seconds": seconds,
        "exit_code": proc.returncode,
        "frames_expected": expected,
        "frames_sent": sent,
        "frames_acked": acked,
        "worst_lag_ms": lag_ms,
        "wall_s": round(wall, 2),
        # CPU of the producer process alone (its own threads: schedule + Kafka I/O).
        "cpu_cores": round((usage.ru_utime + usage.ru_stime) / wall, 3),
        "max_rss_mb": round(peak_rss_mb, 1),
    }
    result["sustained"] = (
        proc.returncode == 0
        and acked >= expected - cameras  # the last period may end mid-round
        and 0 <= lag_ms < 1000
        and wall < seconds + 5
    )
    if proc.returncode != 0:
        result["error"] = stderr.strip().splitlines()[-1:] or ["?"]
    admin = make_admin(Config(kafka_bootstrap=bootstrap))
    try:  # the frames are not needed after the step: free the disk
        admin.delete_topics([topic])
    finally:
        admin.close()
    return result


def run(quick: bool = False, brokers: int = 1, steps: list[int] | None = None) -> dict[str, Any]:
    """Ramp cameras on one producer until a step is not sustained."""
    from camstream.local.broker import LocalBroker, LocalCluster
    from camstream.local.ports import free_port

    steps = steps or ([50, 200] if quick else STEPS)
    seconds = 8.0 if quick else 20.0
    workdir = Path(tempfile.mkdtemp(prefix="camstream-bench-producer-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker: Any = None
    if not bootstrap:
        say(f"starting {'a Kafka broker' if brokers == 1 else f'{brokers} Kafka brokers'}")
        if brokers == 1:
            broker = LocalBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
        else:
            broker = LocalCluster(workdir / "kafka", size=brokers, base_port=free_port_block(6))
        bootstrap = broker.start()
    replication = min(3, brokers)
    steps_done = []
    try:
        for cameras in steps:
            say(f"producer: {cameras} cameras at 1 frame/s, {seconds:.0f} s, {brokers} broker(s)")
            step = simulate_step(bootstrap, cameras, seconds, replication)
            say(
                f"  {'sustained' if step['sustained'] else 'NOT sustained'}:"
                f" {step['frames_acked']}/{step['frames_expected']} acknowledged, worst lag"
                f" {step['worst_lag_ms']} ms, {step['cpu_cores']:.2f} cores,"
                f" {step['max_rss_mb']:.0f} MB, {step['wall_s']:.1f} s"
            )
            steps_done.append(step)
            if not step["sustained"]:
                break
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # gigabytes of frames per run
    sustained = [s["cameras"] for s in steps_done if s["sustained"]]
    return {
        "brokers": brokers,
        "replication_factor": replication,
        "steps": steps_done,
        "max_sustained_cameras": max(sustained) if sustained else 0,
        "limit_reached": not steps_done[-1]["sustained"] if steps_done else False,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", type=int, default=1, help="Kafka brokers (1 or 3)")
    parser.add_argument("--quick", action="store_true", help="two small steps")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    result = run(args.quick, args.brokers)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"producer_capacity_{args.brokers}_brokers.json"
    path.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **result}, indent=2))
    say(
        f"one producer process sustained {result['max_sustained_cameras']} cameras at 1 frame/s"
        f"{'' if result['limit_reached'] else ' (the largest step tried)'}; {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
