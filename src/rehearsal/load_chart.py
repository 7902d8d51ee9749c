"""The response time of a load path over the run, as an SVG file for the report.

A few series (p50/p95/p99 in ms over seconds), dashed horizontal limit lines (the SLOs),
axes with round ticks and a legend. :mod:`rehearsal.svg` maps the numbers to coordinates and
``templates/charts.svg`` draws them, as it draws the evidence pack's trend: one self-contained
SVG (no font, image or link of its own; labels are text, escaped by the template) that Allure
shows as an ``image/svg+xml`` attachment and a browser opens as it is.

    line_chart_svg(series, limits=[("p95", 300, rgb)]) -> str   (an SVG document)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rehearsal import svg, templating

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]  # (x seconds, y milliseconds)
    color: RGB


def _hex(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def _legend_width(text: str) -> float:
    """About how wide a label is at 12 px sans-serif (the legend keys must not overlap)."""
    return 7 * len(text)


def line_chart_svg(
    series: Sequence[Series],
    *,
    limits: Sequence[tuple[str, float, RGB]] = (),
    width: int = 720,
    height: int = 320,
    title: str = "",
) -> str:
    """Draw the series (x in s, y in ms) with dashed limit lines; y starts at 0 and covers the limits."""
    left, right, top, bottom = 56, width - 16, 34, height - 30
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [v for _, v, _ in limits]
    x_max = max(xs + [1.0])
    y_top = max(ys + [1.0]) * 1.1
    y_step = svg.nice_step(y_top)
    y_max = y_step * math.ceil(y_top / y_step)
    x_step = svg.nice_step(x_max)
    x, y = svg.Scale(0, x_max, left, right), svg.Scale(0, y_max, bottom, top)

    legend, at = [], left + 40.0
    for s in series:
        legend.append({"x": at, "color": _hex(s.color), "text": s.label, "dashed": False})
        at += 24 + _legend_width(s.label) + 20
    for label, _, color in limits:
        legend.append({"x": at, "color": _hex(color), "text": f"SLO {label}", "dashed": True})
        at += 24 + _legend_width(f"SLO {label}") + 20
    chart = {
        "title": title or " · ".join(s.label for s in series),
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "top": top,
        "bottom": bottom,
        "y_unit": "ms",
        "x_unit": "s",
        "y_ticks": [(y(v), svg.num(v)) for v in svg.ticks(y_max, y_step)],
        "x_ticks": [(x(v), svg.num(v)) for v in svg.ticks(x_max, x_step)],
        "limits": [
            {"label": label, "value": value, "y": y(value), "color": _hex(color)}
            for label, value, color in limits
        ],
        "series": [
            {
                "label": s.label,
                "color": _hex(s.color),
                "lines": [[(x(px), y(py)) for px, py in s.points]] if len(s.points) > 1 else [],
                "dots": [(x(px), y(py)) for px, py in s.points] if len(s.points) == 1 else [],
            }
            for s in series
        ],
        "legend": legend,
    }
    return templating.render("load_chart.svg", chart=chart)


__all__ = ["RGB", "Series", "line_chart_svg"]
