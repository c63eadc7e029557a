"""The benchmark's scenarios, in the order they run; each writes its figures to ctx.results.

costs      one core's ms per frame at 640x480 and 1280x720, per preset (capacity plan)
producer   how many cameras one `camstream simulate` process sustains at 1 frame/s
accuracy   recall and precision of each preset on labelled frames
presets    faithful, equalized and fast on the labelled still scenes and sample: recall,
           false boxes, one core's ms per frame (bench/presets.py)
same-work  the job against its own per-record path outside Spark on the same frames, per
           preset and load shape (uniform, unequal cost, 3 cameras on 4 partitions, 8
           unevenly hashed cameras on 4); the plain OpenCV loop as a second row
pipelines  Spark micro-batch (and async progress), Real-time Mode and a consumer group of
           Python workers, measured alike: capacity, delay at half of it, a worker killed
reference  the reference demo's design (pickled base64 JSON, classifier per frame, flush
           per send) against the job on the same frames
demo       `camstream demo` with its defaults and a browser on the wall: the delay of the
           frames the page shows, in rounds
wall       `camstream demo --cameras 6` (4 frames/s each, faithful: past capacity) with a
           browser on the wall, the policies in turn: delay, analysed frames/s, gaps, stale
           tiles, shed
replay     looking back at the demo's load: seek, 20-s clips, live delay while replaying
gating     the motion gate on the labelled still scenes (bench/gating.py)

Every figure of a ratio or a delay comes from `ctx.repeats` interleaved rounds (median and
min-max); nothing is trimmed.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import cv2
from frame_functions import analyse_jpeg, detect_faces
from registry import Context, say, scenario, spread
from stack import (
    LoadShape,
    our_producer_rate,
    reference_drain,
)

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import DETECTION_PRESETS
from camstream.core.boxes import iou
from camstream.core.jpeg import decode_jpeg, encode_jpeg

# ---- what the scenarios measure --------------------------------------------------------------
# The default and the cheap preset. `equalized` costs about what `faithful` does and finds
# the same faces, with more false boxes (the `presets` scenario has the three side by side):
# measuring it here too would add a third to the bench's time and tell nothing new.
MEASURED_PRESETS = ("faithful", "fast")


# ---- per-frame costs for the capacity plan -------------------------------------------------
RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720)}


def frame_costs(seconds: float) -> dict[str, Any]:
    """One core's milliseconds per frame of camstream's per-frame function, and JPEG sizes.

    The sample frames are resized (720p is upscaled: the detector sees more pixels, as it
    would with a real 720p camera). The capacity plan (bench/capacity_plan.py) builds on these.
    """
    cv2.setNumThreads(1)
    costs: dict[str, Any] = {}
    for name, size in RESOLUTIONS.items():
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in load_sample_frames()]
        jpegs = [encode_jpeg(f, 80) for f in frames]
        started = time.perf_counter()
        for frame in frames:
            encode_jpeg(frame, 80)
        costs[name] = {
            "jpeg_bytes_median": statistics.median(len(j) for j in jpegs),
            # What a producer that captures raw frames pays per frame to encode them.
            "encode_ms": (time.perf_counter() - started) * 1000 / len(frames),
        }
        for preset in MEASURED_PRESETS:
            settings = DETECTION_PRESETS[preset]
            analyse_jpeg(jpegs[0], settings)  # warm-up: classifier load
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                analyse_jpeg(jpegs[done % len(jpegs)], settings)
                done += 1
            costs[name][f"{preset}_ms_per_frame"] = (time.perf_counter() - started) * 1000 / done
    return costs


# ---- detection accuracy -------------------------------------------------------------------
def accuracy(preset: str, step: int = 1) -> dict[str, float]:
    """Recall and precision on the labelled sample frames (every `step`-th), plus darker and
    smaller copies."""
    settings = DETECTION_PRESETS[preset]
    tp = fp = fn = 0
    labels = sample_labels()["frames"]
    pairs = list(zip(load_sample_frames(), labels, strict=True))[::step]
    for frame, label in pairs:
        truth = [list(map(float, b)) for b in label["faces"]]
        variants = [(frame, truth, 1.0)]
        variants.append((cv2.convertScaleAbs(frame, alpha=0.6, beta=0), truth, 1.0))
        small = cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA)
        variants.append((small, [[v * 0.75 for v in b] for b in truth], 0.75))
        for image, boxes, _scale in variants:
            found = detect_faces(decode_jpeg(encode_jpeg(image, 80)), settings).tolist()
            matched = set()
            for box in boxes:
                hit = next(
                    (i for i, f in enumerate(found) if i not in matched and iou(f, box) >= 0.3),
                    None,
                )
                if hit is None:
                    fn += 1
                else:
                    matched.add(hit)
                    tp += 1
            fp += len(found) - len(matched)
    return {
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


# ---- the scenarios ------------------------------------------------------------------------
@scenario("costs", "one core's milliseconds per frame, per preset and resolution")
def costs_scenario(ctx: Context) -> None:
    say("per-frame cost on one core at 640x480 and 1280x720, both presets")
    ctx.results["frame_costs"] = frame_costs(1.0 if ctx.quick else 5.0)


@scenario("producer", "cameras one producer process sustains at 1 frame/s")
def producer_scenario(ctx: Context) -> None:
    import producer_capacity

    say("cameras one producer process sustains at 1 frame/s")
    ctx.results["producer_capacity"] = producer_capacity.run(quick=ctx.quick)


@scenario("accuracy", "recall and precision of each preset on labelled frames")
def accuracy_scenario(ctx: Context) -> None:
    ctx.results["accuracy"] = {}
    for preset in MEASURED_PRESETS:
        say(f"accuracy of {preset} on labelled frames")
        # A quick run (the tests' smoke run) looks at every sixteenth frame: it runs, that is all.
        ctx.results["accuracy"][preset] = accuracy(preset, step=16 if ctx.quick else 1)


@scenario("presets", "faithful, equalized and fast side by side: recall, false boxes, ms/frame")
def presets_scenario(ctx: Context) -> None:
    import presets

    sets = presets.labelled_sets(ctx.quick)
    sizes = ", ".join(f"{len(frames)} frames of the {name}" for name, frames in sets.items())
    say(f"presets on labelled frames ({sizes}), one thread, {ctx.repeats} interleaved rounds")
    figures = presets.evaluate(sets, ctx.repeats)
    # Its own commit, date and machine, as the table shows them (those of the whole run).
    ctx.results["presets"] = {
        **{key: ctx.results[key] for key in ("commit", "date", "machine")},
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "iou_match": presets.IOU_MATCH,
        "timed_step": presets.TIMED_STEP,
        "presets": figures,
    }
    for preset, row in figures.items():
        say(
            f"  {preset}: "
            + "; ".join(
                f"{name} recall {row[name]['recall']:.3f}, {row[name]['false_boxes']} false boxes"
                for name in sets
            )
            + f"; {row['all']['ms_per_frame_median']:.1f} ms/frame"
        )


# ---- the same work inside and outside Spark ---------------------------------------------------
LOAD_SHAPES = {
    shape.name: shape
    for shape in (
        LoadShape("uniform", 4, [1, 1, 1, 1], ["portrait"]),
        LoadShape("unequal cost", 4, [1, 1, 1, 1], ["portrait", "crowd", "corridor", "texture"]),
        LoadShape("3 cameras on 4 partitions", 4, [1, 1, 1, 0], ["portrait", "crowd", "corridor"]),
        LoadShape(
            "8 cameras on 4, uneven", 4, [4, 2, 1, 1], ["portrait", "crowd", "corridor", "texture"]
        ),
    )
}
QUICK_SHAPES = ("uniform",)
# Seconds of work per measured burst, at a rough guess of each preset's rate on 2 cores.
BURST_S, QUICK_BURST_S = 8.0, 1.5
GUESSED_FPS = {"fast": 120.0, "faithful": 24.0}


def _burst_frames(ctx: Context, preset: str) -> int:
    seconds = QUICK_BURST_S if ctx.quick else BURST_S
    return max(8, round(GUESSED_FPS[preset] * seconds * ctx.cores / 2))


def _rotated(items: list[Any], round_: int) -> list[Any]:
    """`items` in turn order for a round: each round starts one later."""
    shift = round_ % len(items) if items else 0
    return items[shift:] + items[:shift]


@scenario("same-work", "the job against its own per-record path outside Spark, same frames")
def same_work_scenario(ctx: Context) -> None:
    """Per preset and load shape, interleaved rounds of: the job (micro-batches, its
    defaults) draining a burst of the shape's frames, and `process_batch` over the same
    frames in one process per core; the plain OpenCV loop beside them on the uniform shape."""
    import same_work
    from pipelines import MODES, Feeder, drained_burst, running, warm_up

    from camstream.kafka.topics import record_settings_for_topics

    shapes = [LOAD_SHAPES[n] for n in QUICK_SHAPES] if ctx.quick else list(LOAD_SHAPES.values())
    if len({shape.partitions for shape in shapes}) != 1:
        raise ValueError("the shapes share one running job: give them one partition count")
    rows: dict[tuple[str, str], dict[str, list[Any]]] = {}

    def shape_frames(preset: str, shape: LoadShape) -> list[tuple[str, int, bytes]]:
        cameras = len(shape.cameras())
        return shape.frames(max(2, _burst_frames(ctx, preset) // cameras))

    def job_side(preset: str, order: list[LoadShape]) -> None:
        """One running job (micro-batches, its defaults) drains each shape's burst."""
        with running(
            ctx.stack, MODES["micro-batch"], preset, partitions=shapes[0].partitions
        ) as pipeline:
            settings = record_settings_for_topics(pipeline.cfg)
            for index, shape in enumerate(order):
                frames = shape_frames(preset, shape)
                cameras = [camera for camera, _ in shape.cameras()]
                feeder = Feeder(pipeline.cfg, cameras, [jpeg for _, _, jpeg in frames])
                if index == 0:
                    warm_up(pipeline, feeder, 2 * len(cameras))
                    feeder.sent = 0  # the same frames in the same order, seqs going on
                say(f"  the job: {shape.name}, {len(frames)} frames")
                result = drained_burst(pipeline, feeder, len(frames))
                row = rows.setdefault((preset, shape.name), {})
                row.setdefault("job", []).append(result)
                row["settings"] = [settings]
                say(f"    {result['fps']} frames/s, in order: {result['in_order']}")

    def outside_side(preset: str, order: list[LoadShape]) -> None:
        """The same frames through `process_batch` (and the plain loop) outside Spark."""
        for shape in order:
            frames = shape_frames(preset, shape)
            row = rows[preset, shape.name]
            sides = ["baseline"] + (["naive loop"] if shape.name == "uniform" else [])
            for side in sides:
                settings = row["settings"][0] if side == "baseline" else None
                say(f"  {side}: {shape.name}, {len(frames)} frames")
                result = same_work.outside_fps(frames, ctx.cores, settings, preset)
                row.setdefault(side, []).append(result)
                say(f"    {result['fps']} frames/s")

    for round_ in range(ctx.repeats):
        for preset in ("fast",) if ctx.quick else MEASURED_PRESETS:
            order = _rotated(shapes, round_)
            say(f"same work, round {round_ + 1}/{ctx.repeats}, {preset}")
            # The job's path needs the settings the job derives from its topics: the job
            # goes first in the first round, then the sides take turns.
            if round_ % 2 == 0:
                job_side(preset, order)
                outside_side(preset, order)
            else:
                outside_side(preset, order)
                job_side(preset, order)
    section = []
    for (preset, shape_name), row in rows.items():
        job, baseline = row["job"], row["baseline"]
        ratios = [j["fps"] / b["fps"] for j, b in zip(job, baseline, strict=True)]
        item = {
            "preset": preset,
            "shape": shape_name,
            "frames": job[0]["frames"],
            "job_fps": spread([r["fps"] for r in job], 2),
            "baseline_fps": spread([r["fps"] for r in baseline], 2),
            "ratio": spread(ratios, 3),
            "in_order": all(r["in_order"] for r in job),
            "job_runs": job,
        }
        if "naive loop" in row:
            naive = row["naive loop"]
            item["naive_loop_fps"] = spread([r["fps"] for r in naive], 2)
            item["ratio_to_naive_loop"] = spread(
                [j["fps"] / n["fps"] for j, n in zip(job, naive, strict=True)], 3
            )
        section.append(item)
    ctx.results["same_work"] = section


# ---- the three pipelines side by side ---------------------------------------------------------
DELAY_S, QUICK_DELAY_S = 20.0, 6.0  # cameras running, of which the first are left out:
DELAY_WARMUP_S, QUICK_DELAY_WARMUP_S = 5.0, 2.0
PIPELINE_CAMERAS = 10


@scenario("pipelines", "Spark micro-batch, Real-time Mode and a consumer group, measured alike")
def pipelines_scenario(ctx: Context) -> None:
    """Per preset, interleaved rounds of each mode, each round one pipeline: the warm-up
    burst, a burst drained (capacity), then cameras at half that capacity (delay). Then
    (fast) one worker killed under that load, in a pipeline of its own."""
    from pipelines import MODES, Feeder, drained_burst, running, under_load, warm_up

    presets = ("fast",) if ctx.quick else MEASURED_PRESETS
    seconds = QUICK_DELAY_S if ctx.quick else DELAY_S
    warmup_s = QUICK_DELAY_WARMUP_S if ctx.quick else DELAY_WARMUP_S
    # A quick run (the tests' smoke run) measures one Spark mode and the consumer group: the
    # others run the same code with other settings (tests/test_realtime.py runs them).
    modes = ["micro-batch", "consumer group"] if ctx.quick else list(MODES)
    section: dict[str, Any] = {
        "cameras": PIPELINE_CAMERAS,
        "delay_s": seconds,
        "delay_warmup_s": warmup_s,
        "capacity": {},
        "delay": {},
        "overload": {},
        "killed": {},
    }

    def fed(pipeline: Any, preset: str) -> Any:
        ids = [f"cap-{i:02d}" for i in range(PIPELINE_CAMERAS)]
        feeder = Feeder(pipeline.cfg, ids, ctx.stack.jpegs)
        warm_up(pipeline, feeder, max(PIPELINE_CAMERAS, _burst_frames(ctx, preset) // 5))
        return feeder

    for preset in presets:
        capacity: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        delay: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for round_ in range(ctx.repeats):
            for mode in _rotated(modes, round_):
                count = _burst_frames(ctx, preset)
                say(f"pipelines, round {round_ + 1}/{ctx.repeats}: {mode}, {preset}")
                with running(ctx.stack, MODES[mode], preset) as pipeline:
                    burst = drained_burst(pipeline, fed(pipeline, preset), count)
                    capacity[mode].append(burst)
                    say(
                        f"  capacity: {burst['fps']} frames/s ({count} frames), in order:"
                        f" {burst['in_order']}; then {seconds:.0f} s at half of it"
                    )
                    load = under_load(
                        pipeline, burst["fps"] / 2, PIPELINE_CAMERAS, seconds, warmup_s
                    )
                    delay[mode].append(load)
                say(
                    f"  delay p50 {load['delay_ms_p50']} ms, p99 {load['delay_ms_p99']} ms,"
                    f" {load['received']} of {load['sent']}"
                )
        section["capacity"][preset] = {
            mode: {"fps": spread([r["fps"] for r in runs], 2), "runs": runs}
            for mode, runs in capacity.items()
        }
        section["delay"][preset] = {
            mode: {
                "p50_ms": spread([r["delay_ms_p50"] for r in runs]),
                "p99_ms": spread([r["delay_ms_p99"] for r in runs]),
                "lost": sum(r["lost"] for r in runs),
                "runs": runs,
            }
            for mode, runs in delay.items()
        }
    # Past capacity (fast): cameras at twice the mode's capacity, under the default `live`
    # freshness policy (the measurements above analyse every frame: `all`). Does the mode
    # stay live, and how much does it shed?
    # (Async progress is micro-batches' engine with the checkpoint written beside: the
    # same shedding; left out here for the bench's time.)
    overloadable = [] if ctx.quick else ["micro-batch", "Real-time Mode", "consumer group"]
    overloads: dict[str, list[dict[str, Any]]] = {mode: [] for mode in overloadable}
    for round_ in range(ctx.repeats):
        for mode in _rotated(overloadable, round_):
            rate = 2 * section["capacity"]["fast"][mode]["fps"]["median"]
            say(f"past capacity, round {round_ + 1}/{ctx.repeats}: {mode}, {rate:.0f} frames/s")
            with running(ctx.stack, MODES[mode], "fast", freshness="live") as pipeline:
                fed(pipeline, "fast")
                result = under_load(pipeline, rate, PIPELINE_CAMERAS, seconds, warmup_s)
            overloads[mode].append(result)
            say(
                f"  delay p50 {result['delay_ms_p50']} ms, p99 {result['delay_ms_p99']} ms,"
                f" shed {result['skipped_share']:.0%}"
            )
    section["overload"] = {
        mode: {
            "p50_ms": spread([r["delay_ms_p50"] for r in runs]),
            "p99_ms": spread([r["delay_ms_p99"] for r in runs]),
            "skipped_share": spread([r["skipped_share"] for r in runs], 3),
            "lost": sum(r["lost"] for r in runs),
            "runs": runs,
        }
        for mode, runs in overloads.items()
    }
    # One worker killed under half load (fast), a third of the way in: micro-batch (a
    # Python worker) and the consumer group (a worker process). A real-time task runs in the
    # (local) JVM: it has no worker process of its own to kill.
    # (Not in a quick run: tests/test_workers.py kills a worker, tests/test_faults.py a job.)
    killable = [] if ctx.quick else ["micro-batch", "consumer group"]
    kills: dict[str, list[dict[str, Any]]] = {mode: [] for mode in killable}
    for round_ in range(ctx.repeats):
        for mode in _rotated(killable, round_):
            rate = section["capacity"]["fast"][mode]["fps"]["median"] / 2
            say(f"a worker killed, round {round_ + 1}/{ctx.repeats}: {mode}, {rate:.0f} frames/s")
            with running(ctx.stack, MODES[mode], "fast") as pipeline:
                fed(pipeline, "fast")
                result = under_load(
                    pipeline, rate, PIPELINE_CAMERAS, seconds, warmup_s, kill_at_s=seconds / 3
                )
            kills[mode].append(result)
            say(f"  lost {result['lost']}, twice {result['duplicates']}, {result.get('killed')}")
    section["killed"] = {
        mode: {
            "lost": sum(r["lost"] for r in runs),
            "duplicates": spread([r["duplicates"] for r in runs]),
            "longest_pause_s": spread(
                [r["killed"]["longest_pause_s"] or 0.0 for r in runs if r.get("killed")], 2
            ),
            "rounds_every_camera_resumed": sum(
                1 for r in runs if r.get("killed", {}).get("every_camera_resumed")
            ),
            "delay_ms_max_after": spread(
                [r["killed"]["delay_ms_max_after"] for r in runs if r.get("killed")]
            ),
            "runs": runs,
        }
        for mode, runs in kills.items()
    }
    ctx.results["pipelines"] = section


@scenario("reference", "the reference demo's design against the job, same frames, interleaved")
def reference_scenario(ctx: Context) -> None:
    from pipelines import MODES, Feeder, drained_burst, running, warm_up

    count = 20 if ctx.quick else 150
    ours, theirs = [], []
    for round_ in range(ctx.repeats):
        for side in _rotated(["job", "reference"], round_):
            say(f"reference, round {round_ + 1}/{ctx.repeats}: {side}, faithful, {count} frames")
            if side == "job":
                with running(ctx.stack, MODES["micro-batch"], "faithful") as pipeline:
                    feeder = Feeder(pipeline.cfg, [f"ref-{i}" for i in range(4)], ctx.stack.jpegs)
                    warm_up(pipeline, feeder, 8)
                    ours.append(drained_burst(pipeline, feeder, count)["fps"])
                say(f"  {ours[-1]} frames/s")
            else:
                theirs.append(reference_drain(ctx.stack, count))
                say(f"  {theirs[-1]['job_fps']} frames/s")
    ctx.results["reference"] = {
        "frames": count,
        "job_fps": spread(ours),
        "reference_fps": spread([r["job_fps"] for r in theirs]),
        "ratio": spread([o / r["job_fps"] for o, r in zip(ours, theirs, strict=True)], 2),
        "reference_producer_fps": spread([r["producer_fps"] for r in theirs]),
        "our_producer_fps": round(our_producer_rate(ctx.stack, 200 if ctx.quick else 2000), 1),
    }


@scenario("demo", "`camstream demo` with its defaults, a browser on the wall: delay as shown")
def demo_scenario(ctx: Context) -> None:
    """Rounds of `camstream demo` as a user runs it, a browser on the wall; after `warmup`
    s, the delays of the frames the page showed (capture to the decoded image, each tile's
    last 256 frames, by the station's rule for its own figures) and the fps the tiles show."""
    from stack import run_demo_and_sample

    warmup = 30 if ctx.quick else 60
    sample = 10 if ctx.quick else 20
    runs = []
    for round_ in range(ctx.repeats):
        say(
            f"the demo, round {round_ + 1}/{ctx.repeats}: 3 cameras x 4 frames/s; {warmup} s,"
            f" then the page's delays and the station's figures for {sample} s"
        )
        runs.append(run_demo_and_sample({}, warmup_s=warmup, sample_s=sample))
        run = runs[-1]
        say(
            f"  shown p50 {run.get('shown_delay_ms_p50')} ms, p95 {run.get('shown_delay_ms_p95')}"
            f" ms; tiles {run['tile_fps_min']}-{run['tile_fps_max']} fps"
        )
    shown = [run for run in runs if "shown_delay_ms_p50" in run]
    ctx.results["demo"] = {
        "rounds": len(runs),
        "warmup_s": warmup,
        "shown_delay_ms_p50": spread([r["shown_delay_ms_p50"] for r in shown]) if shown else None,
        "shown_delay_ms_p95": spread([r["shown_delay_ms_p95"] for r in shown]) if shown else None,
        "tile_fps_min": min(r["tile_fps_min"] for r in runs),
        "tile_fps_max": max(r["tile_fps_max"] for r in runs),
        "runs": runs,
    }


# Past capacity: `faithful` at 4 frames/s analyses about 2 cameras on 2 cores, so 6 are three
# times what the job can analyse. (Under capacity, the demo's 3 cameras: `demo` above.)
WALL_CAMERAS = 6
WALL_POLICIES = ("live", "all")


@scenario("wall", "the demo past capacity: 6 cameras, policy live against all, in rounds")
def wall_scenario(ctx: Context) -> None:
    """`camstream demo --cameras 6` as a user runs it (faithful preset, 4 frames/s a camera,
    a browser on the wall), the policies taking turns over `ctx.repeats` rounds; after
    `warmup` s, the station's figures every 5 s for `sample` s."""
    from stack import run_demo_and_sample

    warmup = 30 if ctx.quick else 60
    sample = 10 if ctx.quick else 15
    cameras = 3 if ctx.quick else WALL_CAMERAS
    runs: dict[str, list[dict[str, Any]]] = {policy: [] for policy in WALL_POLICIES}
    for round_ in range(ctx.repeats):
        for policy in _rotated(list(WALL_POLICIES), round_):
            say(
                f"wall, round {round_ + 1}/{ctx.repeats}: {cameras} cameras x 4 frames/s,"
                f" faithful, freshness {policy}: {warmup} s, then the station every 5 s for"
                f" {sample} s"
            )
            row = run_demo_and_sample(
                {"CAMSTREAM_FRESHNESS": policy}, warmup_s=warmup, sample_s=sample, cameras=cameras
            )
            runs[policy].append(row)
            say(
                f"  delay p50 {row.get('delay_ms_p50')} ms, p95 {row.get('delay_ms_p95')} ms,"
                f" analysed {row.get('analysed_fps_min')}-{row.get('analysed_fps_median')}"
                f" frames/s a camera, longest gap {row.get('analysed_gap_max_s')} s, stale"
                f" {row.get('stale_tiles')}, shed {row.get('shed_share_median')}"
            )

    def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
        measured = [r for r in rows if "delay_ms_p50" in r]
        gaps = [r["analysed_gap_max_s"] for r in measured if r.get("analysed_gap_max_s")]
        return {
            "delay_ms_p50": spread([r["delay_ms_p50"] for r in measured]),
            "delay_ms_p95": spread([r["delay_ms_p95"] for r in measured]),
            "analysed_fps_min": min(r["analysed_fps_min"] for r in measured),
            "analysed_fps_median": spread([r["analysed_fps_median"] for r in measured], 2),
            "analysed_gap_max_s": max(gaps) if gaps else None,
            "stale_tiles": sum(r["stale_tiles"] for r in measured),
            "shed_share": spread([r["shed_share_median"] or 0.0 for r in measured], 3),
            "runs": rows,
        }

    ctx.results["wall"] = {
        "cameras": cameras,
        "warmup_s": warmup,
        "sample_s": sample,
        "policies": {policy: figures(rows) for policy, rows in runs.items()},
    }


REPLAY_LIVE_CAMERAS = (2,)  # the load


@scenario("replay", "looking back at the demo's load: seek, 20-s clips, live delay while replaying")
def replay_scenario(ctx: Context) -> None:
    import replay

    rounds = 2 if ctx.quick else max(5, ctx.repeats)
    results = ctx.results["replay"] = []
    for live_cameras in REPLAY_LIVE_CAMERAS[:1] if ctx.quick else REPLAY_LIVE_CAMERAS:
        say(f"replay: {live_cameras} live cameras x 4 frames/s, faithful, {rounds} rounds")
        result = replay.measure(ctx.quick, rounds, live_cameras)
        results.append(result)
        say(
            f"  seek p95 {result['seek_ms']['p95']} ms; clip median {result['clip_s']['median']}"
            " s; live delay with a replay / without:"
            + "".join(
                f" {c} {r['median']} ({r['min']}-{r['max']})"
                for c, r in result["live_delay_ratio"].items()
            )
        )


# ---- the motion gate ----------------------------------------------------------------------
# Scored on the labelled scenes (recall, precision, stale boxes; with non-motion change), the
# job draining the same frames with and without it, and live loads: all in bench/gating.py
# (`gating_section`; its loads are `gating.LIVE_LOADS`, its drains `gating.DRAIN_SHAPE`).
@scenario("gating", "the motion gate: recall, precision, stale boxes; the job with and without")
def gating_scenario(ctx: Context) -> None:
    import gating

    ctx.results["gating"] = gating.gating_section(ctx)
