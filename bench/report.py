"""The benchmark's report: the documents' tables of the sections measured, and a plot.

The tables are the ones `bench/docs_tables.py` writes into the README and docs, so what the
terminal shows after a run is what the documents will say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_table(results: dict[str, Any]) -> str:
    import docs_tables

    rendered = [
        f"## {section}\n\n{render(results)}"
        for section, render in docs_tables.RENDERERS.items()
        if section in results
    ]
    return "\n\n".join(rendered)


def plot(results: dict[str, Any], out: Path) -> None:
    """pipelines.png: each pipeline's delay p50 and p99 at half its capacity, per preset."""
    if "pipelines" not in results:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delay = results["pipelines"]["delay"]
    presets = list(delay)
    modes = list(delay[presets[0]])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / (2 * len(presets))
    for n, (preset, pct) in enumerate((p, q) for p in presets for q in ("p50", "p99")):
        ax.bar(
            [x + n * width for x in range(len(modes))],
            [delay[preset][mode][f"{pct}_ms"]["median"] for mode in modes],
            width,
            label=f"{preset} {pct}",
        )
    ax.set_xticks([x + width * (2 * len(presets) - 1) / 2 for x in range(len(modes))])
    ax.set_xticklabels(modes, fontsize=8)
    ax.set_yscale("log")
    ax.set(ylabel="capture to output consumer (ms)", title="Delay at half each mode's capacity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pipelines.png", dpi=100)
    plt.close(fig)
