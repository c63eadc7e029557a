"""The benchmark's scenarios, in the order they run; each writes its figures to ctx.results.

raw        the plain OpenCV loop (decode, grey, detect, draw, encode), one process per core
costs      one core's ms per frame at 640x480 and 1280x720, per preset (capacity plan)
producer   how many cameras one `camstream simulate` process sustains at 1 frame/s
accuracy   recall and precision of each preset on labelled frames
presets    faithful, equalized and fast on the labelled still scenes and sample: recall,
           false boxes, one core's ms per frame (bench/presets.py)
drain      the Spark job draining a pre-filled topic, per preset
reference  the reference demo's design (pickled base64 JSON, classifier per frame, flush
           per send) draining the same frames
latency    capture-to-station delay at a share of each mode's capacity (micro-batch,
           micro-batch with async progress, Real-time Mode)
pipeline   producers + broker + Spark + station consumer near capacity
overload   twice the capacity: the `live` freshness policy against `all`
cameras    many cameras at 1 frame/s with the fast preset
uneven     the job against the plain loop on uneven cameras: uniform, unequal cost, 3 cameras
           on 4 partitions, 8 unevenly hashed cameras on 4 (per preset, order checked)
demo       `camstream demo` with its defaults and a browser on the wall: the latest frame's
           delay per camera after 2 minutes, and the fps the tiles show
wall       `camstream demo --cameras 3, 6, 12` (4 frames/s each, faithful) with a browser on
           the wall, each policy in turn: delay, analysed frames/s, gaps, stale tiles, shed
gating     the motion gate on the labelled still scenes: recall and share gated per preset,
           then cameras at 1 frame/s sustained with and without it (fast preset)
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

import cv2
from boxes import iou
from frame_functions import analyse_jpeg, detect_faces
from registry import Context, say, scenario
from stack import (
    LoadShape,
    drain,
    drain_frames,
    java_frame_ms,
    keeps_up,
    our_producer_rate,
    reference_drain,
    run_load,
    sample_jpegs,
)

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import DETECTION_PRESETS
from camstream.core.annotation import annotate
from camstream.core.jpeg import decode_jpeg, encode_jpeg
from camstream.spark.job import DEFAULT_REALTIME_INTERVAL

# ---- what the scenarios measure --------------------------------------------------------------
# The default and the cheap preset. `equalized` costs about what `faithful` does and finds
# the same faces, with more false boxes (the `presets` scenario has the three side by side):
# measuring it here too would add a third to the bench's time and tell nothing new.
MEASURED_PRESETS = ("faithful", "fast")


def naive_frame(jpeg: bytes, settings: Any) -> bytes:
    """The plain loop body: decode, grey, detect, draw, encode, for every frame."""
    image = decode_jpeg(jpeg)
    boxes = detect_faces(image, settings)
    return encode_jpeg(annotate(image, boxes), 80)


def _raw_worker(args: tuple[str, float, bool]) -> int:
    preset, seconds, camstream_function = args
    cv2.setNumThreads(1)
    settings = DETECTION_PRESETS[preset]
    jpegs = sample_jpegs()
    step = analyse_jpeg if camstream_function else naive_frame
    step(jpegs[0], settings)  # warm-up: classifier load
    frames, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        step(jpegs[frames % len(jpegs)], settings)
        frames += 1
    return frames


def raw_loop(
    preset: str, seconds: float, processes: int, camstream_function: bool = False
) -> float:
    """Frames/s of one process per core running the loop body over the sample frames."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.map(_raw_worker, [(preset, seconds, camstream_function)] * processes)
    return sum(counts) / seconds


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
@scenario("raw", "the plain OpenCV loop, and a loop of camstream's per-frame function")
def raw_scenario(ctx: Context) -> None:
    ctx.results["raw_fps"] = {}
    ctx.results["raw_fps_camstream_function"] = {}
    for preset in MEASURED_PRESETS:
        for key, ours in (("raw_fps", False), ("raw_fps_camstream_function", True)):
            runs = []
            for i in range(ctx.repeats):
                what = "camstream's per-frame function" if ours else "plain OpenCV loop"
                say(f"{what}, {preset}, {ctx.cores} processes, run {i + 1}/{ctx.repeats}")
                runs.append(raw_loop(preset, 1.0 if ctx.quick else 8.0, ctx.cores, ours))
            ctx.results[key][preset] = {"median": statistics.median(runs), "runs": runs}


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
    # Its own commit, date and machine: `--merge` puts it beside sections of other runs.
    ctx.results["presets"] = {
        **{key: ctx.results[key] for key in ("commit", "date", "machine")},
        "quick": ctx.quick,
        "repeats": ctx.repeats,
        "iou_match": presets.IOU_MATCH,
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


@scenario("drain", "the Spark job draining a pre-filled topic, per preset")
def drain_scenario(ctx: Context) -> None:
    ctx.results["drain_fps"] = {}
    for preset in MEASURED_PRESETS:
        count = 60 if ctx.quick else (400 if preset == "faithful" else 1600)
        runs = []
        profile: dict[str, Any] = {}
        for i in range(ctx.repeats):
            say(f"Spark drain, {preset}, {count} frames, run {i + 1}/{ctx.repeats}")
            profile = {}
            runs.append(drain(ctx.stack, preset, count, profile))
        ctx.results["drain_fps"][preset] = {
            "median": statistics.median(runs),
            "runs": runs,
            "cores_busy_by_role_last_run": profile,
        }
    say("our producer (batched, no flush per frame)")
    ctx.results["our_producer_fps"] = our_producer_rate(ctx.stack, 200 if ctx.quick else 2000)


@scenario("reference", "the reference demo's design draining the same frames")
def reference_scenario(ctx: Context) -> None:
    count = 30 if ctx.quick else 150
    say(f"reference design, {count} frames (pickled base64 JSON, classifier per frame)")
    try:
        ctx.results["reference"] = reference_drain(ctx.stack, count)
    except Exception as exc:  # keep the other scenarios' results
        say(f"reference design failed: {type(exc).__name__}: {exc}")
        ctx.results.setdefault("errors", []).append(f"reference: {exc}")


def _capacity(ctx: Context, preset: str, fallback: float) -> float:
    return ctx.results.get("drain_fps", {}).get(preset, {}).get("median") or fallback


def _seconds(ctx: Context) -> float:
    return 12 if ctx.quick else 40


# Each mode at a share of its own capacity: the modes differ in what they carry (a real-time
# task analyses one frame at a time), so "half load" is half of what that mode
# drains. Long-running modes (a task per partition) run with partitions = cores.
LATENCY_MODES: dict[str, dict[str, Any]] = {
    "micro-batch": {"trigger": "0 seconds"},
    "micro-batch async": {"trigger": "0 seconds", "async_progress": True},
    f"realtime, {DEFAULT_REALTIME_INTERVAL} checkpoints": {"trigger": "realtime"},
}


def _mode_capacity(ctx: Context, preset: str, mode: str) -> float:
    """Frames/s the mode drains from a pre-filled topic (measured once per run)."""
    capacities = ctx.results.setdefault("capacity_by_mode", {}).setdefault(preset, {})
    if mode not in capacities:
        settings = LATENCY_MODES[mode]
        if mode == "micro-batch" and ctx.results.get("drain_fps", {}).get(preset):
            capacities[mode] = ctx.results["drain_fps"][preset]["median"]
        elif mode == "micro-batch async" and "micro-batch" in capacities:
            capacities[mode] = capacities["micro-batch"]
        else:
            per_second = 150 if preset == "fast" else 25
            count = per_second * (6 if ctx.quick else 30)
            say(f"capacity of {mode}, {preset}: draining {count} frames")
            capacities[mode] = round(drain(ctx.stack, preset, count, **settings), 1)
        say(f"  {mode}, {preset}: {capacities[mode]:.1f} frames/s")
    return capacities[mode]


@scenario("latency", "capture-to-station delay at 25/50/75% of each mode's capacity")
def latency_scenario(ctx: Context) -> None:
    seconds = _seconds(ctx)
    results = ctx.results["latency"] = []
    fractions = [0.5] if ctx.quick else [0.25, 0.5, 0.75]
    # Real-time Mode's own per-frame time (the Java function), beside the Python one (costs).
    java = ctx.results["java_ms_per_frame"] = {}
    for preset in ("fast", "faithful"):
        java[preset] = round(java_frame_ms(ctx.stack, preset, 60 if ctx.quick else 200), 1)
        say(f"Java per-record function, {preset}: {java[preset]} ms per frame on one core")
    plan = [("fast", fraction, mode) for fraction in fractions for mode in LATENCY_MODES]
    plan += [("faithful", 0.5, mode) for mode in LATENCY_MODES if mode != "micro-batch"]
    for preset, fraction, mode in plan:
        settings = LATENCY_MODES[mode]
        capacity = _mode_capacity(ctx, preset, mode)
        # A real-time query's first seconds are slower (workers and JIT warming): those runs
        # leave 20 s out before measuring, as a long-running job would be measured, and last
        # past the first checkpoint (at 60 s), whose pause they include.
        realtime = settings["trigger"] == "realtime"
        warmup = 20.0 if realtime and not ctx.quick else 8.0
        length = seconds + 40 if realtime and not ctx.quick else seconds
        say(
            f"latency, {preset}, {fraction:.0%} of {mode}'s capacity ({fraction * capacity:.0f}"
            f" frames/s), {length:.0f} s"
        )
        result = run_load(
            ctx.stack,
            preset=preset,
            total_fps=fraction * capacity,
            cameras=10 if preset == "fast" else 5,
            seconds=length,
            warmup_s=warmup,
            **settings,
        )
        results.append({"load": fraction, "mode": mode, "capacity_fps": capacity, **result})
        say(
            f"  p50 {result['delay_ms_p50']:.0f} ms, p99 {result['delay_ms_p99']:.0f} ms,"
            f" {result['received']} of {result['sent']} frames"
        )


@scenario("pipeline", "producers, broker, Spark and a station consumer near capacity")
def pipeline_scenario(ctx: Context) -> None:
    capacity = _capacity(ctx, "fast", 100.0)
    raw_fast = ctx.results.get("raw_fps", {}).get("fast", {}).get("median") or capacity
    say(f"whole pipeline at 85% of the raw loop's {raw_fast:.0f} frames/s")
    result = run_load(
        ctx.stack, preset="fast", total_fps=0.85 * raw_fast, cameras=20, seconds=_seconds(ctx)
    )
    result["keeps_up"] = keeps_up(result)
    ctx.results["pipeline"] = result


@scenario("overload", "twice the capacity: the live freshness policy against all")
def overload_scenario(ctx: Context) -> None:
    capacity = _capacity(ctx, "fast", 100.0)
    seconds = 12 if ctx.quick else 60
    ctx.results["overload"] = {}
    for policy in ("live", "all"):
        say(f"overload: twice the capacity for {seconds} s, policy {policy}")
        ctx.results["overload"][policy] = run_load(
            ctx.stack,
            preset="fast",
            total_fps=2 * capacity,
            cameras=20,
            seconds=seconds,
            freshness=policy,
        )


@scenario("cameras", "many cameras at 1 frame/s with the fast preset")
def cameras_scenario(ctx: Context) -> None:
    ctx.results["cameras"] = []
    for cameras in [20] if ctx.quick else [100, 200, 300]:
        say(f"{cameras} cameras at 1 frame/s, fast preset")
        result = run_load(
            ctx.stack, preset="fast", total_fps=cameras, cameras=cameras, seconds=_seconds(ctx)
        )
        result["keeps_up"] = keeps_up(result)
        ctx.results["cameras"].append(result)


# ---- uneven cameras -----------------------------------------------------------------------
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


def _shape_worker(
    preset: str, shape: str, per_camera: int, seconds: float, claimed: Any, results: Any
) -> None:
    """One process of the plain loop: it takes the next frame of the shape's sequence from a
    counter shared with the other processes (frames are made here: none cross processes),
    until `seconds` pass; then it reports how many it did and when it finished."""
    cv2.setNumThreads(1)
    settings = DETECTION_PRESETS[preset]
    jpegs = [jpeg for _, _, jpeg in LOAD_SHAPES[shape].frames(per_camera)]
    naive_frame(jpegs[0], settings)  # warm-up: classifier load
    results.put(("ready", 0, 0.0))
    while claimed.value < 0:  # the start signal
        time.sleep(0.001)
    done, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        with claimed.get_lock():
            index = claimed.value
            claimed.value += 1
        naive_frame(jpegs[index % len(jpegs)], settings)
        done += 1
    results.put(("done", done, time.time()))


def shape_loop(preset: str, shape: str, per_camera: int, seconds: float, processes: int) -> float:
    """Frames/s of the plain OpenCV loop, one process per core, on a load shape's frames in
    their order, each process taking the next frame when it is free (perfectly balanced:
    the best the machine can do on those frames)."""
    context = multiprocessing.get_context("spawn")
    claimed = context.Value("q", -1)
    results = context.Queue()
    workers = [
        context.Process(
            target=_shape_worker, args=(preset, shape, per_camera, seconds, claimed, results)
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        results.get(timeout=120)  # ready
    started = time.time()
    claimed.value = 0
    finished = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(count for _, count, _ in finished) / (max(t for _, _, t in finished) - started)


# Measured side by side: the job as it ran before (one thread per task, batches of at most
# 200 frames, a produce request per frame) and with its defaults now (a task's frames
# analysed by as many threads as the machine has cores, batches of up to 1000 frames,
# frames gathered into produce requests for 5 ms).
BEFORE = {
    "frame_threads": 1,
    "max_offsets_per_trigger": 200,
    "kafka_properties": (("linger.ms", "0"), ("batch.size", "16384")),
}
VARIANTS = {"before": BEFORE, "now": {}}
QUICK_SHAPES = ("uniform", "8 cameras on 4, uneven")


@scenario("uneven", "the job against the plain loop on uneven cameras, per load shape")
def uneven_scenario(ctx: Context) -> None:
    results = ctx.results["uneven"] = []
    drain_s = 3 if ctx.quick else 40
    presets = ["fast"] if ctx.quick else list(DETECTION_PRESETS)
    variants = {"now": {}} if ctx.quick else VARIANTS
    # A quick run (the tests' smoke run) checks that the scenario runs, not its figures: two
    # shapes, one of them uneven, and no warm-up.
    shapes = [LOAD_SHAPES[n] for n in QUICK_SHAPES] if ctx.quick else list(LOAD_SHAPES.values())
    if not ctx.quick:
        say("uneven load: warming up the Spark session (JIT, Python workers)")
        drain_frames(ctx.stack, presets[0], LOAD_SHAPES["uniform"].frames(4), 4)
    for preset in presets:
        for shape in shapes:
            probe = 2 if ctx.quick else 12
            say(f"uneven load: plain loop, {preset}, {shape.name}")
            loop_fps = shape_loop(preset, shape.name, probe, 1 if ctx.quick else 8, ctx.cores)
            cameras = len(shape.cameras())
            per_camera = max(probe, round(loop_fps * drain_s / cameras))
            for variant, settings in variants.items():
                say(
                    f"uneven load: the job, {variant}, draining {per_camera * cameras} frames,"
                    f" {preset}, {shape.name}"
                )
                drained = drain_frames(
                    ctx.stack, preset, shape.frames(per_camera), shape.partitions, **settings
                )
                ratio = drained["steady_fps"] / loop_fps if loop_fps else float("nan")
                results.append(
                    {
                        "preset": preset,
                        "shape": shape.name,
                        "variant": variant,
                        "cameras": cameras,
                        "loop_fps": round(loop_fps, 2),
                        "ratio": round(ratio, 3),
                        **drained,
                    }
                )
                say(
                    f"  loop {loop_fps:.1f} frames/s, job {drained['steady_fps']:.1f}:"
                    f" {ratio:.2f}, in order: {drained['in_order']}"
                )


@scenario("demo", "`camstream demo` with its defaults, a browser on the wall: delay and fps")
def demo_scenario(ctx: Context) -> None:
    from stack import run_demo_and_sample

    results = ctx.results["demo"] = {}
    warmup = 30 if ctx.quick else 120
    sample = 15 if ctx.quick else 40
    before = {
        "CAMSTREAM_FRAME_THREADS": "1",
        "CAMSTREAM_MAX_OFFSETS_PER_TRIGGER": "200",
        "KAFKA_PROPERTIES": "linger.ms=0;batch.size=16384",
    }
    for name, env in ({"now": {}} if ctx.quick else {"before": before, "now": {}}).items():
        say(
            f"the demo ({name}): 3 cameras x 4 frames/s, faithful; {warmup} s, then the latest"
            f" frame's delay per camera every 5 s for {sample} s"
        )
        results[name] = run_demo_and_sample(env, warmup_s=warmup, sample_s=sample)
        say(
            f"  p50 {results[name]['latest_delay_ms_p50']:.0f} ms,"
            f" p95 {results[name]['latest_delay_ms_p95']:.0f} ms, tiles"
            f" {results[name]['tile_fps_min']}-{results[name]['tile_fps_max']} fps"
        )


WALL_CAMERAS = (3, 6, 12)
WALL_POLICIES = ("live", "all")


@scenario("wall", "the demo past capacity: 3, 6 and 12 cameras, policy live against all")
def wall_scenario(ctx: Context) -> None:
    """`camstream demo --cameras N` as a user runs it (faithful preset, 4 frames/s a camera,
    a browser on the wall), one policy after the other at each load; after `warmup` s, the
    station's figures every 5 s for `sample` s."""
    from stack import run_demo_and_sample

    results = ctx.results["wall"] = []
    warmup = 30 if ctx.quick else 120
    sample = 10 if ctx.quick else 20
    for cameras in (3,) if ctx.quick else WALL_CAMERAS:
        for policy in WALL_POLICIES:
            say(
                f"wall: {cameras} cameras x 4 frames/s, faithful, freshness {policy}:"
                f" {warmup} s, then the station every 5 s for {sample} s"
            )
            row = run_demo_and_sample(
                {"CAMSTREAM_FRESHNESS": policy}, warmup_s=warmup, sample_s=sample, cameras=cameras
            )
            results.append({"cameras": cameras, "policy": policy, **row})
            say(
                f"  delay p50 {row.get('delay_ms_p50')} ms, p95 {row.get('delay_ms_p95')} ms,"
                f" analysed {row.get('analysed_fps_min')}-{row.get('analysed_fps_median')}"
                f" frames/s a camera, longest gap {row.get('analysed_gap_max_s')} s, stale"
                f" {row.get('stale_tiles')}, shed {row.get('shed_share_median')}"
            )


REPLAY_LIVE_CAMERAS = (2, 6)  # the load, then the wall's past capacity


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
