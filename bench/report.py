"""The benchmark's report: a table of every figure, and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_table(results: dict[str, Any]) -> str:
    rows = [("measure", "value")]
    for preset, value in results.get("raw_fps", {}).items():
        rows.append((f"raw OpenCV loop, {preset} (frames/s)", f"{value['median']:.1f}"))
    for preset, value in results.get("raw_fps_camstream_function", {}).items():
        rows.append((f"loop of camstream's function, {preset}", f"{value['median']:.1f}"))
    for preset, value in results.get("drain_fps", {}).items():
        raw = results.get("raw_fps", {}).get(preset, {}).get("median")
        ratio = f" ({value['median'] / raw:.0%} of raw)" if raw else ""
        rows.append((f"Spark job drain, {preset} (frames/s)", f"{value['median']:.1f}{ratio}"))
    if "reference" in results:
        ref = results["reference"]
        ours = results.get("drain_fps", {}).get("faithful", {}).get("median")
        ratio = f" (ours {ours / ref['job_fps']:.1f}x faster)" if ours else ""
        rows.append(("reference design job, faithful (frames/s)", f"{ref['job_fps']:.1f}{ratio}"))
        rows.append(
            ("reference producer, flush per frame (frames/s)", f"{ref['producer_fps']:.0f}")
        )
    if "our_producer_fps" in results:
        rows.append(("our producer, batched (frames/s)", f"{results['our_producer_fps']:.0f}"))
    for preset, acc in results.get("accuracy", {}).items():
        rows.append(
            (f"{preset}: recall / precision", f"{acc['recall']:.3f} / {acc['precision']:.3f}")
        )
    for preset, row in results.get("presets", {}).get("presets", {}).items():
        sets = [name for name in row if name not in ("settings", "all")]
        rows.append(
            (
                f"preset {preset}: recall, false boxes per 100 frames ({', '.join(sets)});"
                " one core's ms/frame",
                "; ".join(
                    f"{row[n]['recall']:.3f}, {row[n]['false_boxes_per_100_frames']:.1f}"
                    for n in sets
                )
                + f"; {row['all']['ms_per_frame_median']:.1f}",
            )
        )
    for preset, modes in results.get("capacity_by_mode", {}).items():
        for mode, fps in modes.items():
            rows.append((f"capacity, {preset}, {mode} (frames/s drained)", f"{fps:.1f}"))
    for item in results.get("latency", []):
        rows.append(
            (
                f"latency {item['preset']}, {item['load']:.0%} of capacity"
                f" ({item['offered_fps']:.0f}/s), {item['mode']} (ms)",
                f"p50 {item['delay_ms_p50']:.0f}, p95 {item['delay_ms_p95']:.0f},"
                f" p99 {item['delay_ms_p99']:.0f}",
            )
        )
    java = results.get("java_ms_per_frame", {})
    if java:
        rows.append(
            (
                "one core per frame, 640x480, Java function (ms)",
                f"faithful {java['faithful']:.1f}, fast {java['fast']:.1f}",
            )
        )
    for item in results.get("latency", []):
        own = java.get(item["preset"])
        if own and item["mode"].startswith("realtime"):
            rows.append(
                (
                    f"realtime {item['preset']}, {item['load']:.0%}: p50 above the Java"
                    " function's per-frame time (ms)",
                    f"{item['delay_ms_p50'] - own:+.0f} ({item['delay_ms_p50']:.0f} - {own:.0f})",
                )
            )
    if "pipeline" in results:
        p = results["pipeline"]
        rows.append(
            (
                f"whole pipeline at {p['offered_fps']:.0f} frames/s offered",
                f"delivered {p['delivered_fps']:.0f}/s, p50 {p['delay_ms_p50']:.0f} ms,"
                f" keeps up: {p['keeps_up']}",
            )
        )
    for policy, o in results.get("overload", {}).items():
        rows.append(
            (
                f"overload x2, policy {policy}",
                f"p95 {o['delay_ms_p95']:.0f} ms,"
                f" last 10 s p50 {o['delay_ms_p50_last_10s']:.0f} ms,"
                f" skipped {o['skipped']} of {o['received']}",
            )
        )
    for w in results.get("wall", []):
        rows.append(
            (
                f"demo wall, {w['cameras']} cameras x 4 frames/s, freshness {w['policy']}",
                f"delay p50 {w.get('delay_ms_p50')} ms, p95 {w.get('delay_ms_p95')} ms;"
                f" analysed {w.get('analysed_fps_min')} frames/s a camera at least, longest gap"
                f" {w.get('analysed_gap_max_s')} s; stale tiles {w.get('stale_tiles')};"
                f" shed {w.get('shed_share_median')}",
            )
        )
    for c in results.get("cameras", []):
        rows.append(
            (
                f"{c['cameras']} cameras at 1 frame/s, fast",
                f"delivered {c['delivered_fps']:.0f}/s, p50 {c['delay_ms_p50']:.0f} ms,"
                f" keeps up: {c['keeps_up']}",
            )
        )
    for resolution, cost in results.get("frame_costs", {}).items():
        rows.append(
            (
                f"one core per frame, {resolution} (ms)",
                f"faithful {cost['faithful_ms_per_frame']:.1f}, fast"
                f" {cost['fast_ms_per_frame']:.1f}; JPEG {cost['jpeg_bytes_median'] / 1000:.0f} KB",
            )
        )
    producer = results.get("producer_capacity")
    if producer:
        best = max(
            (s for s in producer["steps"] if s["sustained"]),
            key=lambda s: s["cameras"],
            default=None,
        )
        value = f"{producer['max_sustained_cameras']}"
        if best:
            value += f" ({best['cpu_cores']:.2f} cores, {best['max_rss_mb']:.0f} MB)"
        if not producer["limit_reached"]:
            value += ", limit not reached"
        rows.append(("cameras at 1 frame/s, one producer process", value))
    for item in results.get("uneven", []):
        rows.append(
            (
                f"uneven: {item['shape']}, {item['preset']}, {item['variant']}",
                f"job {item['steady_fps']:.1f} / loop {item['loop_fps']:.1f} frames/s"
                f" = {item['ratio']:.2f}" + ("" if item["in_order"] else ", ORDER BROKEN"),
            )
        )
    gating = results.get("gating", {})
    for name, row in gating.get("recall", {}).items():
        rows.append(
            (
                f"motion gate, still scenes, {name}: recall ungated / gated, gated",
                f"{row['recall_ungated']:.3f} / {row['recall_gated']:.3f}"
                f" (ratio {row['recall_ratio']:.3f}); {row['share_gated']:.0%} of frames gated"
                + (
                    f"; precision {row['precision_ungated']} / {row['precision_gated']},"
                    f" stale boxes {row['stale_rate_gated']}"
                    if "precision_gated" in row
                    else ""
                ),
            )
        )
    for preset, row in gating.get("regions", {}).items():
        rows.append(
            (
                f"motion gate, {preset}: cascade on frames that moved, whole frame / regions",
                f"{row['cascade_ms_whole_frame']:.1f} / {row['cascade_ms_regions']:.1f} ms"
                f" median; recall {row['recall_whole_frame']:.3f} / {row['recall_regions']:.3f}",
            )
        )
    for row in gating.get("loads", []):
        analysed = row["frames_analysed"] + row["frames_gated"]
        share = f", {row['frames_gated'] / analysed:.0%} gated" if row["frames_gated"] else ""
        rows.append(
            (
                f"{row['cameras']} still-scene cameras at 1 frame/s, {row['label']}",
                f"delivered {row['delivered_fps']:.0f}/s, p50 {row['delay_ms_p50']:.0f} ms"
                f" (first 10 s {row['delay_ms_p50_first_10s']:.0f}, last 10 s"
                f" {row['delay_ms_p50_last_10s']:.0f}){share}, keeps up: {row['keeps_up']}",
            )
        )
    for row in gating.get("drains", []):
        rows.append(
            (
                f"the job alone draining {row['seconds']} s of {row['cameras']} still-scene"
                f" cameras, {row['label']}",
                f"{row['steady_fps']:.0f} frames/s steady, in order: {row['in_order']}",
            )
        )
    for name, demo in results.get("demo", {}).items():
        rows.append(
            (
                f"demo, defaults {name}: latest frame's delay (ms), tiles' fps",
                f"p50 {demo['latest_delay_ms_p50']:.0f}, p95 {demo['latest_delay_ms_p95']:.0f};"
                f" {demo['tile_fps_min']:.1f}-{demo['tile_fps_max']:.1f} fps (cameras send 4)",
            )
        )
    width = max(len(r[0]) for r in rows)
    lines = [f"| {a.ljust(width)} | {b} |" for a, b in rows]
    lines.insert(1, f"| {'-' * width} | --- |")
    return "\n".join(lines)


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if results.get("cameras"):
        fig, ax = plt.subplots(figsize=(6, 4))
        cams = [c["cameras"] for c in results["cameras"]]
        ax.plot(cams, [c["offered_fps"] for c in results["cameras"]], "k--", label="offered")
        ax.plot(cams, [c["delivered_fps"] for c in results["cameras"]], "o-", label="delivered")
        ax.set(xlabel="cameras at 1 frame/s", ylabel="frames/s", title="Throughput vs cameras")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput_vs_cameras.png", dpi=100)
        plt.close(fig)
    if results.get("latency"):
        fig, ax = plt.subplots(figsize=(7, 4))
        fast = [i for i in results["latency"] if i["preset"] == "fast"]
        for n, trigger in enumerate(dict.fromkeys(i["mode"] for i in fast)):
            items = [i for i in fast if i["mode"] == trigger]
            loads = [i["load"] * 100 for i in items]
            for pct, style in (("p50", "o-"), ("p99", "^:")):
                ax.plot(
                    loads,
                    [i[f"delay_ms_{pct}"] for i in items],
                    style,
                    color=f"C{n}",
                    label=f"{trigger} {pct}",
                )
        ax.set(
            xlabel="load (% of the mode's own capacity)",
            ylabel="capture to station (ms)",
            title="Latency vs load per mode, fast preset",
        )
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "latency_vs_load.png", dpi=100)
        plt.close(fig)
    if results.get("uneven"):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        items = results["uneven"]

        # "8 cameras on 4, uneven" -> "8 cameras\non 4, uneven": the labels sit side by side.
        def label(item: dict[str, Any]) -> str:
            return f"{item['shape'].replace(' on ', chr(10) + 'on ')}\n{item['preset']}"

        labels = list(dict.fromkeys(label(i) for i in items))
        variants = list(dict.fromkeys(i["variant"] for i in items))
        width = 0.8 / len(variants)
        for n, variant in enumerate(variants):
            ratios = {label(i): i["ratio"] for i in items if i["variant"] == variant}
            ax.bar(
                [x + n * width for x in range(len(labels))],
                [ratios.get(label, 0) for label in labels],
                width,
                label=variant,
            )
        ax.axhline(0.9, color="k", linestyle="--", linewidth=1, label="target 0.90")
        ax.set_xticks([x + width * (len(variants) - 1) / 2 for x in range(len(labels))])
        ax.set_xticklabels(labels, fontsize=7)
        ax.set(ylabel="job / plain OpenCV loop", title="Uneven cameras: the job against the loop")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "uneven_load.png", dpi=100)
        plt.close(fig)
    if "reference" in results and "drain_fps" in results:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = ["raw OpenCV loop", "camstream (Spark)", "reference design"]
        values = [
            results.get("raw_fps", {}).get("faithful", {}).get("median", 0),
            results["drain_fps"]["faithful"]["median"],
            results["reference"]["job_fps"],
        ]
        ax.bar(labels, values, color=["#888", "#2e7d32", "#c62828"])
        ax.set(ylabel="frames/s (faithful preset)", title="Ours vs the reference design")
        fig.tight_layout()
        fig.savefig(out / "ours_vs_reference.png", dpi=100)
        plt.close(fig)
