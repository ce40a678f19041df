"""The benchmark's table: one row per figure, with the reference measured in the same run
and their ratio; and the small statistics every part of it uses."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

HEADER = ("figure", "ours", "reference", "ratio", "target", "result")


@dataclass(frozen=True)
class Row:
    figure: str
    ours: str
    reference: str
    ratio: str
    target: str
    passed: bool | None  # None: informational


class Report:
    """Collects rows; prints them as they come (a long run shows progress) and at the end.

    A figure that could not be measured (NaN, None) is printed as `—` and counted as
    broken: the run exits 1, since a missing number means the benchmark itself failed."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.broken: list[str] = []  # correctness failures and missing figures: exit 1

    def add(
        self,
        figure: str,
        ours: float | None,
        reference: float | None,
        unit: str,
        target: str,
        passed: bool | None,
        ratio: float | None = None,
    ) -> None:
        if ours is None or math.isnan(ours):
            self.broken.append(f"{figure}: no number measured")
            ours, passed = math.nan, False
        if reference is not None and math.isnan(reference):
            self.broken.append(f"{figure}: its reference was not measured")
        if ratio is None and reference and not math.isnan(reference):
            ratio = ours / reference
        row = Row(
            figure,
            _fmt(ours, unit),
            "—" if reference is None else _fmt(reference, unit),
            "—" if ratio is None or math.isnan(ratio) else f"{ratio:.3g}x",
            target,
            passed,
        )
        self.rows.append(row)
        print(f"  {_line(row)}", flush=True)

    def table(self) -> str:
        lines = [_line(Row(*HEADER[:5], None), header=True), "-" * 112]
        lines += [_line(row) for row in self.rows]
        return "\n".join(lines)


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "—"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.3f} %"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g}{unit}"


def _line(row: Row, header: bool = False) -> str:
    result = "result" if header else {True: "PASS", False: "MISS", None: "info"}[row.passed]
    return (
        f"{row.figure:<44} {row.ours:>12} {row.reference:>12} {row.ratio:>8} "
        f"{row.target:>16}  {result}"
    )


Probe = tuple[Callable[[], object], Callable[[], object] | None]  # (action, untimed setup)


def paired_median_ms(probes: list[Probe], times: int) -> list[float]:
    """Median wall time in ms of each probe's action over `times` runs (its setup runs
    untimed before each), after one untimed round that warms the caches. The probes take
    turns call by call (one of each, then one of each...), so a change in the machine's
    speed during the measurement falls on every action alike; one median per probe."""
    samples: list[list[float]] = [[] for _ in probes]
    for run in range(times + 1):
        for index, (action, setup) in enumerate(probes):
            if setup is not None:
                setup()
            start = time.perf_counter()
            action()
            if run:
                samples[index].append(time.perf_counter() - start)
    return [statistics.median(each) * 1000 for each in samples]


def median_ms(
    action: Callable[[], object], times: int, setup: Callable[[], object] | None = None
) -> float:
    """`paired_median_ms` of one action."""
    return paired_median_ms([(action, setup)], times)[0]


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


README_START = "<!-- bench-table:start -->"
README_END = "<!-- bench-table:end -->"


def replace_readme_block(readme: str, lines: list[str]) -> str:
    """The README with the text between the benchmark's markers replaced by `lines` in a
    fenced block: the results section is the run's own output, never pasted by hand."""
    if README_START not in readme or README_END not in readme:
        raise ValueError(f"no {README_START} … {README_END} block")
    head, rest = readme.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = "\n".join(["```text", *lines, "```"])
    return f"{head}{README_START}\n{block}\n{README_END}{tail}"
