"""PNG plots of a bench run, with matplotlib (the ``bench`` extra).

Rate plots carry the min-max spread of the repeats as error bars, so a reader
sees at once which differences are larger than the run-to-run noise. Each client
keeps one colour in every plot of a run; log axes are labelled in plain numbers
(1,000, 2,000, 5,000), efficiency in % as the report prints it, and the latency
plots draw the ideal (ceil(N / c) x latency) beside the clients.
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


_COLOURS: dict[str, str] = {}


def _colour(client: str) -> str:
    """The client's colour in every plot of this run."""
    return _COLOURS.get(client, "tab:gray")


def _plain_log(axis: Any, ticks: list[float] | None = None) -> None:
    """Log scale labelled 1,000 2,000 5,000 instead of 10^3 (at ``ticks`` when given)."""
    from matplotlib import ticker

    plain = ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    if ticks:
        axis.set_major_locator(ticker.FixedLocator(ticks))
    else:
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(ticker.NullFormatter())


def write(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write every plot the run has data for; return their file names (relative to out_dir)."""
    rows = summaries(results)
    clients: dict[str, list[str]] = {c["point"]: [] for c in results["cells"]}
    for c in results["cells"]:
        clients[c["point"]].append(c["client"])
    palette = [f"C{i}" for i in range(10)] + ["black", "gold", "navy", "lime"]
    _COLOURS.clear()
    for c in results["cells"]:
        if c["client"] not in _COLOURS:
            _COLOURS[c["client"]] = palette[len(_COLOURS) % len(palette)]
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
            "efficiency: ideal makespan / wall time",
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
                    xs,
                    ys,
                    yerr=[lo, hi] if lo else None,
                    marker="o",
                    capsize=3,
                    label=client,
                    color=_colour(client),
                )
        xs_all = [p["x"] for p in points]
        latency = bool(points[0]["latency_ms"])
        ax.set_xscale("log")
        _plain_log(ax.xaxis, xs_all)
        if metric == "rps":
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
            if latency and all(p.get("ideal_s") for p in points):
                ideal = [p["requests"] / p["ideal_s"] for p in points]
                ax.plot(xs_all, ideal, "k--", linewidth=1, label="ideal")
        else:
            from matplotlib import ticker

            ax.set_ylim(0, 1.05)
            ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="ideal")
            ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.set_xlabel("concurrency (requests in flight, log scale)")
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
    from matplotlib import ticker

    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("client (bar colour: the " + scenario["axis"] + ")")
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
    ax.barh(names, values, color=[_colour(c) for c in names])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.12)  # room for the value labels
    from matplotlib import ticker

    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("client CPU µs per request (median)")
    ax.set_ylabel("client")
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
