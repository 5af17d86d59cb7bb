"""Benchmark figures: one measured row each, printed as a table or written as JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import Iterable


@dataclass
class Figure:
    """One measured figure.

    `anchor` is the bare value it is compared with (a bare diffusers call, the bare SQL
    underneath a library method); `ratio` is value / anchor unless the benchmark gives its
    own (a median of paired ratios). `met` is None when there is no goal, nothing was
    measured, or the spread does not settle it (printed "unclear").
    """

    name: str
    value: float | None
    unit: str = ""
    anchor: float | None = None
    ratio: float | None = None
    ratio_spread: tuple[float, float] | None = None  # min and max of the paired ratios
    goal: str = ""
    met: bool | None = None
    note: str = ""  # how it was measured, or why it was skipped

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.anchor:
            self.ratio = self.value / self.anchor

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Figure":
        data = dict(data)
        if data.get("ratio_spread") is not None:
            data["ratio_spread"] = tuple(data["ratio_spread"])
        return cls(**data)


def skipped(name: str, why: str, goal: str = "") -> Figure:
    return Figure(name=name, value=None, goal=goal, note=f"skipped: {why}")


def percentile(values: Iterable[float], pct: float) -> float:
    """The PCT-th percentile, linear between the closest ranks (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.1f}"
    elif abs(value) >= 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _ratio(figure: Figure) -> str:
    if figure.ratio is None:
        return "-"
    text = f"{figure.ratio:.3f}"
    if figure.ratio_spread is not None:
        low, high = figure.ratio_spread
        text += f" ({low:.3f}-{high:.3f})"
    return text


def _met(figure: Figure) -> str:
    if figure.met is None:
        return "unclear" if figure.goal and figure.value is not None else "-"
    return "met" if figure.met else "NOT met"


def format_table(figures: list[Figure], title: str = "") -> str:
    """A plain-text table: figure, value, anchor, ratio, goal, met; notes numbered below it."""
    header = ("figure", "value", "anchor (bare)", "ratio", "goal", "met")
    rows, notes = [], []
    for figure in figures:
        value = "skipped" if figure.value is None and figure.note.startswith("skipped") else _number(figure.value, figure.unit)
        name = figure.name
        if figure.note:
            notes.append(figure.note)
            name = f"{name} [{len(notes)}]"
        rows.append((name, value, _number(figure.anchor, figure.unit), _ratio(figure), figure.goal or "-", _met(figure)))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for number, note in enumerate(notes, 1):
        lines.append(f"[{number}] {note}")
    return "\n".join(lines)


def figures_json(figures: list[Figure], **context) -> str:
    return json.dumps({**context, "figures": [f.to_dict() for f in figures]}, indent=2)
