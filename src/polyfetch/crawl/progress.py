"""What the crawl shows on stderr: a live progress line (rich) and the closing summary.

The display classes are interchangeable (`NullProgress`, `RichProgress`), and
rich is imported only when a live display is wanted. Progress counts input
lines whose fate is settled (recorded, or skipped as blank, comment or
duplicate), so done reaches the total - the file's line count, when the input
is a regular file - exactly at the end.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from polyfetch.crawl.inputs import InputCounts

if TYPE_CHECKING:
    from polyfetch.frontier import FrontierStats

_LOW = 1e-5  # seconds: the first histogram bucket
_STEP = math.log(1.01)  # buckets 1% wide


class Histogram:
    """Latencies in 1%-wide logarithmic buckets: constant memory, percentiles within 1%."""

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.n = 0

    def add(self, seconds: float) -> None:
        """Count one latency."""
        self._counts[int(math.log(max(seconds, _LOW) / _LOW) / _STEP)] += 1
        self.n += 1

    def percentile(self, q: float) -> float | None:
        """The ``q``-quantile (0 < q <= 1) in seconds, or None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return float(_LOW * math.exp((bucket + 0.5) * _STEP))
        raise AssertionError("unreachable")


@dataclass
class Stats:
    """Running totals over the records written."""

    records: int = 0
    failed: int = 0  #: an error or a status >= 400 (what --fail-on-error looks at)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  #: by class: "2xx", "4xx"...
    bytes: int = 0
    saved: int = 0
    save_errors: int = 0
    duplicates: int = 0  #: records of duplicate lines (not fetched)
    latency: Histogram = field(default_factory=Histogram)  #: of records with a response

    def add(self, record: dict[str, Any]) -> None:
        """Account for one record."""
        self.records += 1
        status, error = record.get("status"), record.get("error")
        if error:
            self.errors[error] += 1
        if status is not None:
            self.statuses[f"{status // 100}xx"] += 1
            self.bytes += record.get("size") or 0
            self.latency.add((record.get("elapsed_ms") or 0) / 1000)
        if error or (status is not None and status >= 400):
            self.failed += 1
        if record.get("duplicate_of") is not None:
            self.duplicates += 1
        if record.get("file"):
            self.saved += 1
        if record.get("save_error"):
            self.save_errors += 1


class NullProgress:
    """No live display."""

    def start(self) -> None:
        """Nothing to show."""

    def update(self, stats: Stats, counts: InputCounts, *, force: bool = False) -> None:
        """Nothing to show."""

    def stop(self) -> None:
        """Nothing to show."""


class RichProgress:
    """A rich progress line on stderr: done/total, rate, errors, elapsed and ETA."""

    def __init__(
        self,
        stderr: TextIO,
        total: int | None,
        status: Callable[[], str],
        *,
        unit: str = "lines",
        known: Callable[[], int] | None = None,
    ) -> None:
        """``known``: the total as known so far (a crawl that follows links finds more)."""
        self._known = known
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Status(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(status(), style="bold")

        class Eta(ProgressColumn):
            """The time left while crawling; nothing once stopping, interrupted or done."""

            remaining = TimeRemainingColumn()

            def render(self, task: Any) -> Text:
                if status() != "crawling":
                    return Text("")
                return Text.assemble("ETA ", self.remaining.render(task))

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed or 0:,.0f} {unit}/s", style="cyan")

        self._progress = Progress(
            SpinnerColumn(),
            Status(),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TextColumn("[red]{task.fields[errors]} failed"),
            TimeElapsedColumn(),
            Eta(),
            console=Console(file=stderr),
            refresh_per_second=5,
            speed_estimate_period=10,
        )
        self._task = self._progress.add_task("", total=total, errors=0)
        self._next = 0.0

    def start(self) -> None:
        """Start drawing (a refresh thread redraws it a few times a second)."""
        self._progress.start()

    def update(self, stats: Stats, counts: InputCounts, *, force: bool = False) -> None:
        """Note progress (cheap: the figures are handed over at most 10 times a second)."""
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + 0.1
        done = stats.records + counts.skipped_blank + counts.skipped_seen
        total = None if self._known is None else done + self._known()
        self._progress.update(self._task, completed=done, errors=stats.failed, total=total)

    def stop(self) -> None:
        """Draw the last state and stop."""
        self._progress.stop()


def frontier_status(stats: FrontierStats) -> str:
    """The progress line's words on a crawl that follows links."""
    return f"depth {stats.deepest} · {stats.waiting:,} waiting · {stats.refused_total:,} refused"


def summary(
    stats: Stats,
    counts: InputCounts,
    wall: float,
    *,
    unfinished: int,
    interrupted: bool,
    frontier: FrontierStats | None = None,
) -> str:
    """The closing summary, several plain-text lines."""
    rate = stats.records / wall if wall > 0 else 0.0
    lines = [
        f"polyfetch crawl: {plural(stats.records, 'record')} in {wall:.2f} s ({rate:,.0f}/s); "
        f"{_bytes(stats.bytes)} of bodies ({_bytes(stats.bytes / wall if wall > 0 else 0)}/s)",
        "  status:  " + (_counts(stats.statuses) or "no responses"),
        "  errors:  " + (_counts(stats.errors) or "none"),
    ]
    if stats.latency.n:
        p = [(q, stats.latency.percentile(q / 100) or 0.0) for q in (50, 90, 99)]
        lines.append(
            "  latency: " + " · ".join(f"p{q} {v * 1000:,.1f} ms" for q, v in p) + " (responses)"
        )
    lines.append(
        f"  input:   {plural(counts.lines, 'line')}; skipped {counts.skipped_blank:,} "
        f"blank/comment, {counts.skipped_seen:,} already recorded; {stats.duplicates:,} "
        "duplicate (recorded with duplicate_of, not fetched again)"
    )
    if frontier is not None:
        refused = " · ".join(f"{k} {v:,}" for k, v in frontier.refused.items() if v) or "none"
        lines.append(
            f"  pages:   {frontier.pages:,} fetched, deepest level {frontier.deepest}, "
            f"{frontier.waiting:,} waiting"
        )
        lines.append(f"  refused: {refused} (links not followed)")
        if frontier.sitemaps:
            lines.append(
                f"  sitemaps: {frontier.sitemaps:,} read, {frontier.sitemap_urls:,} URLs listed"
            )
    if stats.saved or stats.save_errors:
        lines.append(
            f"  saved:   {plural(stats.saved, 'body', 'bodies')}, "
            f"{stats.save_errors:,} could not be saved"
        )
    if interrupted:
        were = "request was" if unfinished == 1 else "requests were"
        lines.append(
            f"  interrupted: {unfinished:,} {were} cancelled; they and any unread input "
            "have no record: run the same command with --resume to finish them"
        )
    return "\n".join(lines) + "\n"


def plural(n: int, singular: str, many: str | None = None) -> str:
    """``1 record``, ``2 records``, ``1,000 records``."""
    return f"{n:,} {singular if n == 1 else many or singular + 's'}"


def _counts(counter: Counter[str]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in sorted(counter.items()))


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
