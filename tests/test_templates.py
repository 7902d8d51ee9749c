"""The evidence pack and the load chart from templates (#16): escaped, one line per value, valid SVG.

The pack is rendered straight from a decision over hand-made results (no run folder, no
Allure), with what a target or a device may send back: a test named like a ``<script>``
with an ``onerror`` image, a device id and a message carrying ``|``, a line break and an
escape sequence. The page must show them as text, the Markdown must keep its table rows and
list items whole, and every chart must be well-formed SVG that loads nothing from outside.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

from rehearsal.gonogo import decide
from rehearsal.history import Changes, Trend, TrendPoint
from rehearsal.load_chart import Series, line_chart_svg
from rehearsal.pack import EvidencePack, render_html, render_markdown
from rehearsal.plan import Plan, load_plan
from rehearsal.results import MergedResult, TestResult

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 11, 26)
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
DEVICE = "sas-akut-dok1|READY\n| sas-akut-dok1 | READY |"
MESSAGE = "printer-state-message: toner | low\n| tech-printers | Godkänd |\x1b[2J"


def failed(
    n: int, criterion: str, site: str | None, name: str, message: str, device: str = ""
) -> MergedResult:
    labels = {"criterion": criterion, "nodeid": f"t.py::t{n}", "aspect": "teknisk"}
    labels |= {"site": site} if site else {}
    labels |= {"device": device} if device else {}
    return MergedResult(
        latest=TestResult(
            uuid=f"u{n}", history_id=f"h{n}", name=name, full_name=f"t#{n}", nodeid=labels["nodeid"],
            status="failed", labels=labels, start=1, stop=2, message=message,
        )
    )  # fmt: skip


@pytest.fixture
def plan(make_plan: Callable[..., Path]) -> Plan:
    return load_plan(make_plan()).plan


@pytest.fixture
def hostile_pack(plan: Plan) -> EvidencePack:
    """A NO-GO whose failures carry a script-like test name and a device text that is a table row."""
    results = [
        failed(1, "tech-fhir", None, f"Testpatienter finns {HOSTILE}", f"namnet är {HOSTILE}"),
        failed(2, "tech-printers", "sas-boras", "Skrivare redo", MESSAGE, device=DEVICE),
    ]
    decision = decide(
        plan, results, complete=True, rehearsal=plan.rehearsal, run="r1", parent=None, today=TODAY
    )
    point = TrendPoint(
        run="r1", rehearsal=plan.rehearsal, label=f"{plan.rehearsal} {HOSTILE}", decision="NO-GO",
        headline="NO-GO", cells={"sas-boras": {"teknisk": {"failed": 1, "open": 1}}}, open={}, current=True,
    )  # fmt: skip
    return EvidencePack(decision=decision, trend=Trend(wave="w1", points=(point,)), changes=Changes())


class Elements(HTMLParser):
    """Every element and attribute of a page, and its text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_a_script_and_an_onerror_image_in_a_failure_are_text_on_the_page(
    hostile_pack: EvidencePack, plan: Plan, tmp_path: Path
) -> None:
    page = render_html(hostile_pack, plan, tmp_path)
    parsed = Elements()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not [name for name, _ in parsed.attributes if name.startswith("on")]
    text = "".join(parsed.text)
    assert f"Testpatienter finns {HOSTILE}" in text  # shown as it was sent, in the finding
    assert f"{plan.rehearsal} {HOSTILE}" in text  # and in the trend's legend
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    # the page is still the two sheets with the decision on the first
    assert page.count('<section class="sheet"') == 2
    assert re.search(r'<div class="word">NO-GO</div>', page)


def test_a_pipe_and_a_line_break_from_a_device_keep_the_markdown_table_and_lists_whole(
    hostile_pack: EvidencePack, plan: Plan, tmp_path: Path
) -> None:
    md = render_markdown(hostile_pack, plan, tmp_path)
    assert "\x1b" not in md
    lines = md.splitlines()
    table = lines[lines.index("| Status | Kriterium | Plats | Detaljer |") :]
    table = table[: table.index("")]
    columns = [len(re.findall(r"(?<!\\)\|", row)) for row in table]
    assert columns == [5] * len(table), table  # no row split, no cell added by the device's text
    printer = next(row for row in table if "(`tech-printers`) | Södra Älvsborgs Sjukhus, Borås" in row)
    assert "sas-akut-dok1\\|READY \\| sas-akut-dok1 \\| READY \\|" in printer
    assert not [
        row for row in lines if row.startswith("| sas-akut-dok1") or row.startswith("| tech-printers")
    ]
    # the finding's item keeps the device on its own list line
    findings = lines[lines.index("## Blockerande fynd") + 2 : lines.index("## Undantag") - 1]
    assert findings and all(re.match(r"(- \*\*|  - )", row) for row in findings), findings
    assert any(
        row.startswith("  - Skrivare redo (sas-akut-dok1|READY | sas-akut-dok1 | READY |)")
        for row in findings
    )


def external(root: ElementTree.Element) -> list[str]:
    """Anything in an SVG that could load or run something: links, images, scripts, url(…)."""
    found = []
    for el in root.iter():
        tag = el.tag.removeprefix(SVG)
        if tag in ("image", "use", "script", "foreignObject", "a", "style"):
            found.append(tag)
        for name, value in el.attrib.items():
            if "href" in name or name.startswith("on") or "url(" in value or "//" in value:
                found.append(f"{tag} {name}={value}")
    return found


def test_the_trend_sparklines_are_well_formed_svg_with_their_series(
    hostile_pack: EvidencePack, plan: Plan, tmp_path: Path
) -> None:
    page = render_html(hostile_pack, plan, tmp_path)
    sparks = re.findall(r"<svg class='spark'.*?</svg>", page, re.S)
    assert sparks
    for text in sparks:
        root = ElementTree.fromstring(text)
        assert root.tag == f"{SVG}svg" and external(root) == []
    [printers] = [
        ElementTree.fromstring(s) for s in sparks if "data-site='sas-boras' data-aspect='teknisk'" in s
    ]
    assert (printers.get("data-rates"), printers.get("data-open")) == ("0.0", "1")
    assert [c.get("class") for c in printers.iter(f"{SVG}circle")] == ["bad"]
    assert [r.findtext(f"{SVG}title") for r in printers.iter(f"{SVG}rect")] == ["1"]


def test_the_response_time_chart_is_an_svg_document_with_its_series_and_limits() -> None:
    blue, orange = (31, 119, 180), (255, 127, 14)
    p95 = [(0.0, 100.0), (5.0, 150.0), (10.0, 120.0)]
    text = line_chart_svg(
        [Series("p95", p95, blue), Series("p99 <&>", [(4.0, 200.0)], orange)],
        limits=[("p95", 300, blue), ("p99", 600, orange)],
    )
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg')
    root = ElementTree.fromstring(text.encode("utf-8"))
    assert root.tag == f"{SVG}svg" and (root.get("width"), root.get("height")) == ("720", "320")
    assert external(root) == []
    series = {g.get("data-label"): g for g in root.iter(f"{SVG}g") if g.get("class") == "series"}
    assert list(series) == ["p95", "p99 <&>"]  # escaped in the file, the label itself when read
    assert series["p95"].get("stroke") == "#1f77b4"
    [line] = series["p95"].iter(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    assert len(points) == len(p95)
    xs, ys = zip(*points, strict=True)
    assert xs == tuple(sorted(xs)) and ys[1] < ys[2] < ys[0]  # 150 ms drawn above 120 above 100
    assert len(list(series["p99 <&>"].iter(f"{SVG}circle"))) == 1  # one point: a dot, not a line
    limits = {el.get("data-label"): el for el in root.iter(f"{SVG}line") if el.get("class") == "limit"}
    assert {k: v.get("data-value") for k, v in limits.items()} == {"p95": "300", "p99": "600"}
    assert float(limits["p99"].get("y1", "0")) < float(limits["p95"].get("y1", "0")) < ys[0]
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert "ms" in ticks and "SLO p95" in ticks and "600" in ticks  # the y axis covers the limits
