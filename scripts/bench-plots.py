"""Draws docs/bench/*.png from the results.json that scripts/bench writes.

    target/bench-venv/bin/python scripts/bench-plots.py docs/bench/results.json docs/bench
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def throughput(results, out):
    series = {}
    for run in results["closed_loop"]:
        rate = sum(row["throughput"] for row in run["report"]["summary"])
        series.setdefault(run["load"], []).append((run["concurrency"], rate))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, points in series.items():
        points.sort()
        style = "k--" if label == "ceiling" else "-"
        ax.plot([c for c, _ in points], [r for _, r in points], style, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(results["concurrencies"], [str(c) for c in results["concurrencies"]])
    ax.set_xlabel("connections (closed loop)")
    ax.set_ylabel("requests per second")
    # Head room above the ceiling's line for a two-column legend.
    top = max(rate for points in series.values() for _, rate in points)
    ax.set_ylim(0, top * 1.4)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper center")
    ax.set_title(f"Throughput against concurrency ({results['duration']} per point)")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)


def latency(results, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for ax, kind, target in zip(axes, ("resume", "update"), (2.0, 5.0)):
        def rows(target):
            found = (r for r in results["open_loop"] if r["kind"] == kind and r["target"] == target)
            return sorted(found, key=lambda r: r["rate"])

        for field, name in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            ax.plot([r["rate"] for r in rows("embedded")], [r[field] for r in rows("embedded")], marker="o", label=name)
        if rows("ceiling"):
            ax.plot([r["rate"] for r in rows("ceiling")], [r["p99_ms"] for r in rows("ceiling")], "k--", marker="x",
                    label="ceiling p99")
        ax.axhline(target, color="red", linestyle=":", label=f"p99 target at half load ({target:g} ms)")
        ax.set_yscale("log")
        ax.set_xlabel("offered requests per second (open loop)")
        ax.set_title(f"embedded {kind}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("latency from intended send time, ms")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)


def main():
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    throughput(results, out)
    latency(results, out)


if __name__ == "__main__":
    main()
