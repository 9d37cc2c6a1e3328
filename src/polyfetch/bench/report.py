"""From raw runs to findings: summaries, who wins where and by how much, report.md.

Nothing here is hard-coded about which model should win: every sentence of the
"when each model wins" section is computed from the medians in results.json,
so a run on another machine writes its own conclusions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from polyfetch.bench import peers
from polyfetch.bench.run import summarize

#: efficiency under which a backend is said to have stopped scaling
SCALING_FLOOR = 0.5


@dataclass(frozen=True)
class Verdict:
    """The winner of one contest (a point, or all executors of a scenario) and its margins."""

    scenario: str
    contest: str
    winner: str
    rate: float
    unit: str
    runner_up: str | None
    over_runner_up: float | None
    slowest: str | None
    over_slowest: float | None
    #: why the margin over the next may be noise: one run each, or overlapping spreads
    caveat: str | None = None

    def sentence(self, *, md: bool = True) -> str:
        """The verdict in words; ``md`` puts the winner in bold."""
        winner = f"**{self.winner}**" if md else self.winner
        text = f"{winner} wins with {self.rate:,.0f} {self.unit}"
        if self.runner_up and self.over_runner_up:
            text += f", {self.over_runner_up:.2f}x {self.runner_up} (next)"
        if self.slowest and self.over_slowest and self.slowest != self.runner_up:
            text += f" and {self.over_slowest:.2f}x {self.slowest} (slowest)"
        return text + (f" ({self.caveat})" if self.caveat else "")


def _caveat(best: dict[str, Any], second: dict[str, Any] | None) -> str | None:
    """Why a win over the next may be within the noise, or None."""
    if second is None:
        return None
    if best.get("runs", 1) <= 1 or second.get("runs", 1) <= 1:
        return "a single run: no spread measured, a small margin may be noise"
    if second["rps_max"] >= best["rps_min"]:
        return "within the run-to-run spread of the next"
    return None


def summaries(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cell key -> the median figures of its runs."""
    return {key: summarize(records) for key, records in results["runs"].items()}


def _cells(results: dict[str, Any], point_key: str) -> list[str]:
    return [c["client"] for c in results["cells"] if c["point"] == point_key]


def _label(scenario: dict[str, Any], point: dict[str, Any], client: str) -> str:
    return f"{client}/{point['x']}" if scenario["axis"] == "executor" else client


def _contests(results: dict[str, Any], scenario: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(contest name, cell keys): per point on a concurrency axis, one for all executors."""
    points = scenario["points"]
    backends = [c for c in _cells(results, points[0]["key"]) if not c.startswith("peer:")]
    if scenario["axis"] == "executor":
        keys = [f"{p['key']}/{b}" for p in points for b in backends]
        return [("every backend with every executor", keys)]
    return [(f"{scenario['axis']} {p['x']}", [f"{p['key']}/{b}" for b in backends]) for p in points]


def verdicts(results: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[Verdict]:
    """One verdict per contest, polyfetch backends only (peers are reported beside them)."""
    found = []
    for scenario in results["scenarios"]:
        for contest, keys in _contests(results, scenario):
            ranked = sorted(
                (k for k in keys if "failed" not in rows.get(k, {"failed": 1})),
                key=lambda k: rows[k]["rps"],
                reverse=True,
            )
            if not ranked:
                continue

            def name(key: str, scenario: dict[str, Any] = scenario) -> str:
                point_key, client = key.rsplit("/", 1)
                point = next(p for p in scenario["points"] if p["key"] == point_key)
                return _label(scenario, point, client)

            best = rows[ranked[0]]["rps"]
            second = ranked[1] if len(ranked) > 1 else None
            last = ranked[-1] if len(ranked) > 1 else None
            found.append(
                Verdict(
                    scenario["name"],
                    contest,
                    name(ranked[0]),
                    best,
                    scenario["unit"],
                    name(second) if second else None,
                    best / rows[second]["rps"] if second else None,
                    name(last) if last else None,
                    best / rows[last]["rps"] if last else None,
                    _caveat(rows[ranked[0]], rows[second] if second else None),
                )
            )
    return found


def model_seconds(
    results: dict[str, Any], rows: dict[str, dict[str, Any]], key: str
) -> float | None:
    """Makespan predicted as ceil(N/c) x latency + N x CPU per request (from "throughput")."""
    point_key, client = key.rsplit("/", 1)
    point = next(p for s in results["scenarios"] for p in s["points"] if p["key"] == point_key)
    cost = next(
        (
            r["cpu_us_per_request"]
            for k, r in rows.items()
            if k.startswith("throughput/") and k.endswith(f"/{client}") and "failed" not in r
        ),
        None,
    )
    if cost is None or not point["latency_ms"] or point["process"]:
        return None
    rounds = math.ceil(point["requests"] / point["concurrency"])
    return float(rounds * point["latency_ms"] / 1000 + point["requests"] * cost / 1e6)


def findings(results: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    """Further sentences per scenario, each computed from the medians."""
    out = []
    for scenario in results["scenarios"]:
        points = scenario["points"]
        for client in _cells(results, points[0]["key"]):
            figures = [(p, rows.get(f"{p['key']}/{client}", {})) for p in points]
            if scenario["axis"] == "concurrency" and len(points) > 1:
                out += _scaling(scenario["name"], client, figures)
            elif len(points) > 1:
                out += _against_first(scenario["name"], client, figures)
    return out + layer_costs(results, rows)


def _scaling(
    name: str, client: str, figures: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[str]:
    """Where a client's efficiency falls below `SCALING_FLOOR` as concurrency rises."""
    effs = [(p["x"], r["efficiency"]) for p, r in figures if r.get("efficiency") is not None]
    if not effs:
        return []
    low = next((c for c, e in effs if e < SCALING_FLOOR), None)
    trail = ", ".join(f"{e:.0%} at c={c}" for c, e in effs)
    verdict = (
        f"falls below {SCALING_FLOOR:.0%} of the ideal at concurrency {low}"
        if low is not None
        else f"stays above {SCALING_FLOOR:.0%} of the ideal at every level"
    )
    return [f"{name}: {client} {verdict} ({trail})."]


def _against_first(
    name: str, client: str, figures: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[str]:
    """Each point against the first (inline, http); for waits, how many ran at once."""
    out = []
    (first, base), *rest = figures
    if "rps" in base:
        others = [
            f"{p['x']} {r['rps'] / base['rps']:.2f}x the rate, "
            f"{r['cpu_us_per_request'] - base['cpu_us_per_request']:+,.0f} µs CPU per item"
            for p, r in rest
            if "rps" in r
        ]
        if others:
            out.append(f"{name}: on {client}, against {first['x']}: " + "; ".join(others) + ".")
    for p, r in figures:
        if p.get("executor") == "process" and "parent_us_per_request" in r:
            out.append(
                f"{name}: with the process pool, {client}'s fetching process spent "
                f"{r['parent_us_per_request']:,.0f} µs CPU per item (fetching and handing "
                f"over), its workers {r['workers_us_per_request']:,.0f} µs."
            )
        if p["latency_ms"] and "wall_s" in r:
            calls = p["requests"] * p["latency_ms"] / 1000 / r["wall_s"]
            out.append(
                f"{name}: {client} with {p['x']} has {calls:.1f} waits in progress on average "
                f"(of {p['concurrency']} possible)."
            )
    return out


def layer_costs(results: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    """What each backend costs over the raw library it stands on (or its anchor), where both ran."""
    out = []
    for scenario in results["scenarios"]:
        for point in scenario["points"]:
            for backend, raw in peers.RAW_OF.items():
                ours = rows.get(f"{point['key']}/{backend}", {})
                theirs = rows.get(f"{point['key']}/peer:{raw}", {})
                if "cpu_us_per_request" in ours and "cpu_us_per_request" in theirs:
                    # an anchor is not under the backend: the ratio is a gap, not a layer's cost
                    kind = "anchor" if backend in peers.ANCHORS else "raw"
                    out.append(
                        f"{point['key']}: {backend} vs {raw}: {backend} spends "
                        f"{ours['cpu_us_per_request']:,.0f} µs CPU per request, {kind} {raw} "
                        f"{theirs['cpu_us_per_request']:,.0f} "
                        f"({ours['cpu_us_per_request'] / theirs['cpu_us_per_request']:.2f}x); "
                        f"req/s {ours['rps'] / theirs['rps']:.2f}x {kind}."
                    )
    return out


@dataclass(frozen=True)
class Column:
    """One column of a scenario's table: its header, and whether the compact table shows it."""

    name: str
    compact: bool


#: Every column, in order. The compact set (the default on a terminal) is what tells the
#: clients apart; ``--wide`` and report.md show them all. Either way a column that is empty
#: ("-") in every row is left out, and so is the point when the scenario has only one.
COLUMNS = (
    Column("point", True),
    Column("client", True),
    Column("req/s", True),
    Column("wall s", False),
    Column("CPU s", False),
    Column("CPU µs/req", True),
    Column("parent µs/req", True),
    Column("workers µs/req", True),
    Column("p50 ms", True),
    Column("p99 ms", True),
    Column("RSS MiB", True),
    Column("workers RSS", False),
    Column("efficiency", False),
    Column("model s", False),
    Column("server CPU s", False),
    Column("errors", True),
)


def _rate(r: dict[str, Any], wide: bool) -> str:
    """The median rate; with more than one run, its spread (min-max, or +-% when compact)."""
    text = f"{r['rps']:,.0f}"
    if r.get("runs", 1) <= 1 or r["rps_min"] == r["rps_max"]:
        return text  # one run: one number, not "1,211 (1,211-1,211)"
    if wide:
        return f"{text} ({r['rps_min']:,.0f}-{r['rps_max']:,.0f})"
    return f"{text} ±{(r['rps_max'] - r['rps_min']) / 2 / r['rps']:.0%}"


def _us(record: dict[str, Any], name: str) -> str:
    """A µs figure a record may lack (only runs with post-processing have the split)."""
    value = record.get(name)
    return f"{value:,.0f}" if value is not None else "-"


def table(
    results: dict[str, Any],
    rows: dict[str, dict[str, Any]],
    scenario: dict[str, Any],
    *,
    wide: bool = True,
) -> tuple[list[str], list[list[str]]]:
    """One scenario's table, formatted: (headers, rows), without the columns left out."""
    body = []
    for point in scenario["points"]:
        for client in _cells(results, point["key"]):
            key = f"{point['key']}/{client}"
            r = rows[key]
            if "failed" in r:
                body.append([str(point["x"]), client, *["-"] * 13, f"failed: {r['failed']}"])
                continue
            model = model_seconds(results, rows, key)
            errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
            body.append(
                [
                    str(point["x"]),
                    client,
                    _rate(r, wide),
                    f"{r['wall_s']:.2f}",
                    f"{r['cpu_s']:.2f}",
                    f"{r['cpu_us_per_request']:,.0f}",
                    _us(r, "parent_us_per_request"),
                    _us(r, "workers_us_per_request"),
                    f"{r['p50_ms']:.1f}",
                    f"{r['p99_ms']:.1f}",
                    f"{r['rss_mib']:.0f}",
                    f"{r['children_rss_mib']:.0f}" if r["children_rss_mib"] else "-",
                    f"{r['efficiency']:.0%}" if r.get("efficiency") is not None else "-",
                    f"{model:.2f}" if model is not None else "-",
                    f"{r['server_cpu_s']:.2f}" if r.get("server_cpu_s") is not None else "-",
                    errors,
                ]
            )
    keep = [
        i
        for i, col in enumerate(COLUMNS)
        if (wide or col.compact)
        and any(cells[i] != "-" for cells in body)
        and not (col.name == "point" and len(scenario["points"]) == 1)
    ]
    axis = "c" if scenario["axis"] == "concurrency" else scenario["axis"]  # as in -c
    header = [axis if COLUMNS[i].name == "point" else COLUMNS[i].name for i in keep]
    header = [scenario.get("unit", "req/s") if h == "req/s" else h for h in header]
    return header, [[cells[i] for i in keep] for cells in body]


def _md_table(header: tuple[str, ...] | list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def _capacity(found: dict[str, Any]) -> str:
    """One capacity probe for the report: ``c=1000: 21,000 req/s (9,000 seen at 43% server
    CPU)``."""
    if "capacity" not in found:
        return f"c={found['concurrency']}: not measured ({found['failed']})"
    return (
        f"c={found['concurrency']}: {found['capacity']:,.0f} req/s "
        f"({found['rps']:,.0f} seen at {found['server_cpu_pct']:.0f}% server CPU)"
    )


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    """report.md: the machine, every scenario's table, then the findings."""
    rows = summaries(results)
    m = results["machine"]
    lines = [
        "# polyfetch bench report",
        "",
        f"Command: `{results['command']}`  ",
        ("**Interrupted: partial results.**  " if results.get("interrupted") else "")
        + f"Started {results['started']}; {results['repeat']} interleaved run(s) per cell, "
        "each in a fresh process; figures are medians (rate: median, and min-max over the runs).  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB, "
        f"{m['system']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
        "",
        "CPU s and RSS count the client process and its workers (the process pool, or curl); "
        "efficiency = ideal makespan (ceil(N / concurrency) x latency) / wall time; "
        "model s = ideal + N x the client's CPU per request in the throughput scenario.",
    ]
    if results.get("static_server"):
        lines[-1] += f" Static files (throughput, large) served by {results['static_server']}."
    found = results.get("capacity")
    if found:
        lines[-1] += (
            " The latency server's capacity, measured first at each concurrency "
            f"({found[0]['client']} on undelayed bursts, fresh connections; "
            "capacity = requests / server CPU s, at least the rate seen): "
            + "; ".join(_capacity(f) for f in found)
            + ". Latency delays keep concurrency / delay under half of it (100 ms if not measured)."
        )
    if results.get("quick"):
        lines += [
            "",
            "*A --quick run*: one short run per cell, so fixed costs weigh far more than in a "
            "full run (a process pool's start-up, ~0.5 s, a fresh interpreter's imports) and "
            "single verdicts are not measured against the noise. Where a ranking here "
            "contradicts a full run (e.g. the process pool last on a list too small to repay "
            "its start-up), the full run is the one to believe.",
        ]
    for scenario in results["scenarios"]:
        p = scenario["points"][0]
        lines += ["", f"## {scenario['title']}", "", f"*{scenario['question']}* "]
        lines[-1] += (
            f"{p['requests']} requests per run"
            if len(scenario["points"]) == 1
            else "Requests per run: "
            + ", ".join(f"{q['requests']} at {q['x']}" for q in scenario["points"])
        ) + f"; rate is {scenario['unit']}."
        lines += ["", *_md_table(*table(results, rows, scenario))]
    lines += [
        "",
        "## When each model wins",
        "",
        "| scenario | contest | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {v.scenario} | {v.contest} | {v.sentence()} |" for v in verdicts(results, rows)]
    lines += ["", "## Findings", ""] + [f"- {f}" for f in findings(results, rows)]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    elif results.get("plots_skipped"):  # say why, or a reader looks for files never drawn
        lines += ["", "## Plots", "", f"Skipped: {results['plots_skipped']}."]
    return "\n".join(lines) + "\n"
