"""PNG plots of a bench run, with matplotlib (the ``bench`` extra).

Rate plots carry the min-max spread of the repeats as error bars, so a reader
sees at once which differences are larger than the run-to-run noise.
"""

from __future__ import annotations

import os
from typing import Any

from polyfetch.bench.report import summaries

#: what drawing needs importable (the bench checks it before the first run)
NEEDS = "matplotlib.pyplot"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a server
    import matplotlib.pyplot as plt

    return plt


def write(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write every plot the run has data for; return their file names (relative to out_dir)."""
    rows = summaries(results)
    clients: dict[str, list[str]] = {c["point"]: [] for c in results["cells"]}
    for c in results["cells"]:
        clients[c["point"]].append(c["client"])
    written = []
    for scenario in results["scenarios"]:
        if scenario["axis"] != "concurrency":
            written.append(_grouped(scenario, clients, rows, out_dir))
        elif len(scenario["points"]) == 1:
            written.append(_cost(scenario, clients, rows, out_dir))
        else:
            written += _series(scenario, clients, rows, out_dir)
    return written


def _series(
    scenario: dict[str, Any], clients: dict[str, list[str]], rows: dict[str, Any], out_dir: str
) -> list[str]:
    plt = _pyplot()
    points = scenario["points"]
    files = []
    for metric, ylabel, fname in (
        ("rps", "requests/s (median, min-max)", f"{scenario['name']}_rps.png"),
        (
            "efficiency",
            "efficiency = ideal makespan / wall time",
            f"{scenario['name']}_efficiency.png",
        ),
    ):
        if metric == "efficiency" and not points[0]["latency_ms"]:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for client in clients[points[0]["key"]]:
            xs, ys, lo, hi = [], [], [], []
            for p in points:
                r = rows.get(f"{p['key']}/{client}", {})
                if r.get(metric) is None:
                    continue
                xs.append(p["x"])
                ys.append(r[metric])
                if metric == "rps":
                    lo.append(r["rps"] - r["rps_min"])
                    hi.append(r["rps_max"] - r["rps"])
            if xs:
                ax.errorbar(
                    xs, ys, yerr=[lo, hi] if lo else None, marker="o", capsize=3, label=client
                )
        ax.set_xscale("log")
        if metric == "rps":
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.05)
        ax.set_xlabel("concurrency (log)")
        ax.set_ylabel(ylabel)
        ax.legend()
        files.append(_save(plt, fig, ax, scenario, os.path.join(out_dir, fname), "both"))
    return files


def _grouped(
    scenario: dict[str, Any], clients: dict[str, list[str]], rows: dict[str, Any], out_dir: str
) -> str:
    plt = _pyplot()
    points = scenario["points"]
    backends = clients[points[0]["key"]]
    width = 0.8 / len(points)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, p in enumerate(points):
        ys: list[float] = []
        err: list[list[float]] = [[], []]
        for b in backends:
            r = rows.get(f"{p['key']}/{b}", {})
            ys.append(r.get("rps", 0.0))
            err[0].append(r["rps"] - r["rps_min"] if "rps" in r else 0.0)
            err[1].append(r["rps_max"] - r["rps"] if "rps" in r else 0.0)
        xs = [j + (i - (len(points) - 1) / 2) * width for j in range(len(backends))]
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=str(p["x"]))
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylabel(f"{scenario['unit']} (median, min-max)")
    ax.legend(title=scenario["axis"], loc="center left", bbox_to_anchor=(1.0, 0.5))
    fname = f"{scenario['name']}_by_{scenario['axis']}.png"
    return _save(plt, fig, ax, scenario, os.path.join(out_dir, fname), "y")


def _cost(
    scenario: dict[str, Any], clients: dict[str, list[str]], rows: dict[str, Any], out_dir: str
) -> str:
    """CPU per request of every client, backends and peers: the cost of each stack."""
    plt = _pyplot()
    point = scenario["points"][0]
    names = [
        c
        for c in clients[point["key"]]
        if "cpu_us_per_request" in rows.get(f"{point['key']}/{c}", {})
    ]
    values = [rows[f"{point['key']}/{c}"]["cpu_us_per_request"] for c in names]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = ["tab:gray" if c.startswith("peer:") else "tab:blue" for c in names]
    ax.barh(names, values, color=colors)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.12)  # room for the value labels
    ax.set_xlabel("client CPU µs per request (median; grey: raw libraries and other clients)")
    fname = f"{scenario['name']}_cpu_per_request.png"
    return _save(plt, fig, ax, scenario, os.path.join(out_dir, fname), "x")


def _save(plt: Any, fig: Any, ax: Any, scenario: dict[str, Any], path: str, grid: str) -> str:
    """Title, grid, layout, file; returns the file's name."""
    ax.set_title(scenario["title"], fontsize=10)
    if grid == "both":
        ax.grid(True, which="both", alpha=0.3)
    else:
        ax.grid(True, axis=grid, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.path.basename(path)
