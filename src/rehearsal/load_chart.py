"""A small PNG line chart in pure Python (zlib only): response time over the run, for the report.

A plotting library would be the heaviest dependency of the harness for one picture per
load path, so this draws what the report needs and nothing more: a few series, dashed
horizontal limit lines, axes with numbered ticks and a legend, in a 3×5 pixel font.

    line_chart_png(series, limits=[("p95", 300, rgb)]) -> bytes   (a valid 8-bit RGB PNG)
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

RGB = tuple[int, int, int]

# 3×5 glyphs, one string of 15 bits (row by row) per character; only what axes and legends use.
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", " ": "000000000000000",
    "-": "000000111000000", "p": "111101111100100", "m": "000111111101101", "s": "000011100001110",
    "S": "011100010001110", "L": "100100100100111", "O": "111101101101111", "k": "100101110101101",
}  # fmt: skip


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]  # (x seconds, y milliseconds)
    color: RGB


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB, thick: int = 1, dash: int = 0) -> None:
        """Bresenham; ``dash`` > 0 draws dash-pixel segments with equal gaps."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                for t in range(thick):
                    self.dot(x0, y0 + t, color)
            if x0 == x1 and y0 == y1:
                return
            step += 1
            e2 = 2 * err
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def text(self, x: int, y: int, text: str, color: RGB = (60, 60, 60), scale: int = 2) -> None:
        for ch in text:
            bits = _FONT.get(ch, _FONT[" "])
            for i, bit in enumerate(bits):
                if bit == "1":
                    for ox in range(scale):
                        for oy in range(scale):
                            self.dot(x + (i % 3) * scale + ox, y + (i // 3) * scale + oy, color)
            x += 4 * scale

    def png(self) -> bytes:
        rows = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 6))
            + chunk(b"IEND", b"")
        )


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _label(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def line_chart_png(
    series: Sequence[Series],
    *,
    limits: Sequence[tuple[str, float, RGB]] = (),
    width: int = 720,
    height: int = 320,
) -> bytes:
    """Draw the series (x in s, y in ms) with dashed limit lines; y starts at 0 and covers the limits."""
    left, right, top, bottom = 56, 16, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points] or [0.0, 1.0]
    ys = [y for s in series for _, y in s.points] + [v for _, v, _ in limits]
    x_max = max(max(xs), 1.0)
    y_step = _nice_step(max(max(ys, default=1.0), 1.0) * 1.1)
    y_max = y_step * math.ceil(max(max(ys, default=1.0), 1.0) * 1.1 / y_step)
    x_step = _nice_step(x_max)

    canvas = _Canvas(width, height)

    def at(x: float, y: float) -> tuple[int, int]:
        return left + round(x / x_max * plot_w), top + plot_h - round(y / y_max * plot_h)

    grid, axis = (232, 232, 232), (90, 90, 90)
    tick = 0.0
    while tick <= y_max + 1e-9:
        _, py = at(0, tick)
        canvas.line(left, py, left + plot_w, py, grid)
        text = _label(tick)
        canvas.text(left - 6 - len(text) * 8, py - 5, text)
        tick += y_step
    tick = 0.0
    while tick <= x_max + 1e-9:
        px, _ = at(tick, 0)
        canvas.line(px, top, px, top + plot_h, grid)
        text = _label(tick)
        canvas.text(px - len(text) * 4, top + plot_h + 8, text)
        tick += x_step
    canvas.line(left, top, left, top + plot_h, axis)
    canvas.line(left, top + plot_h, left + plot_w, top + plot_h, axis)
    canvas.text(8, 8, "ms")
    canvas.text(width - right - 8, height - 12, "s")

    for _, value, color in limits:
        _, py = at(0, value)
        canvas.line(left, py, left + plot_w, py, color, thick=1, dash=6)
    for s in series:
        pts = [at(x, y) for x, y in s.points]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            canvas.line(x0, y0, x1, y1, s.color, thick=2)
        if len(pts) == 1:
            canvas.line(pts[0][0] - 2, pts[0][1], pts[0][0] + 2, pts[0][1], s.color, thick=2)

    x = left + 40
    for s in series:
        canvas.line(x, 14, x + 18, 14, s.color, thick=3)
        canvas.text(x + 24, 10, s.label)
        x += 24 + len(s.label) * 8 + 20
    for label, _, color in limits:
        canvas.line(x, 14, x + 18, 14, color, dash=4)
        canvas.text(x + 24, 10, f"SLO {label}")
        x += 24 + (4 + len(label)) * 8 + 20
    return canvas.png()
