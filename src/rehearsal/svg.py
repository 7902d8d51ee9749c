"""The numbers of the harness's SVG charts; ``templates/charts.svg`` draws them.

Two charts share this: the trend sparklines of the evidence pack (:mod:`rehearsal.pack`) and
the response time over a load run (:mod:`rehearsal.load_chart`). Python maps values to
coordinates here; the macros of ``charts.svg`` lay out lines, polylines and text, escaped by
the template, with no font, image or link of their own (a browser draws the text).

    Scale(lo, hi, start, end)(value) -> pixel      linear; lo == hi maps to the middle
    polylines([(x, y) | None, ...]) -> [[(x, y), ...], ...]   runs between the gaps
    ticks(top) -> [0, step, 2 * step, ...]          a round step, up to and including top
    num(value) -> "12.5"                            one decimal at most, as SVG wants it
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]


@dataclass(frozen=True)
class Scale:
    """``[lo, hi]`` onto ``[start, end]`` pixels (a y axis has ``end < start``: SVG's y grows down)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        share = (value - self.lo) / span if span else 0.5
        return self.start + share * (self.end - self.start)


def polylines(points: Sequence[Point | None]) -> list[list[Point]]:
    """The unbroken runs of ``points`` (None is a gap: nothing was measured there)."""
    runs: list[list[Point]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 × 10ⁿ) giving about ``ticks`` intervals over ``span``."""
    raw = span / max(ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def ticks(top: float, step: float) -> list[float]:
    """0, step, 2·step … up to ``top`` (and ``top`` itself when it is a multiple)."""
    count = math.floor(top / step + 1e-9)
    return [i * step for i in range(count + 1)]


def num(value: float) -> str:
    """A coordinate or a tick label: one decimal at most, ``12`` rather than ``12.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


__all__ = ["Point", "Scale", "nice_step", "num", "polylines", "ticks"]
