"""Text fidelity: what was written must arrive byte for byte, and when it does not, show both.

Words dropped from referral answers ("ingen", "inte" that vanish and turn a finding
around) and å/ä/ö turned into "Ã¥" are the failures clinicians reported after real
go-lives. A check compares the UTF-8 bytes; when they differ, the message shows the sent
and the received text side by side, line by line, and names what went missing or was
added, so the panel reads the damage without opening any attachment.

    difference(sent, received, what) -> str | None     None when byte-identical
"""

from __future__ import annotations

import difflib
import re
import textwrap
from itertools import zip_longest

COLUMN = 48
_WORDS = re.compile(r"\S+")


def difference(sent: str, received: str | None, what: str) -> str | None:
    """None when ``received`` is byte-identical to ``sent``; else a side-by-side explanation."""
    if received is not None and received.encode("utf-8") == sent.encode("utf-8"):
        return None
    if received is None:
        return f"{what}: inget mottaget\n" + side_by_side(sent, "")
    a, b = sent.encode("utf-8"), received.encode("utf-8")
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    head = (
        f"{what} kom inte fram ordagrant: skickat {len(a)} byte, mottaget {len(b)} byte, "
        f"första skillnaden vid byte {first}"
    )
    lines = [head, side_by_side(sent, received)]
    missing, added = word_changes(sent, received)
    if missing:
        lines.append("saknas i mottaget: " + ", ".join(f"«{w}»" for w in missing))
    if added:
        lines.append("tillkommit i mottaget: " + ", ".join(f"«{w}»" for w in added))
    return "\n".join(lines)


def side_by_side(sent: str, received: str, width: int = COLUMN) -> str:
    """Two columns, ``skickat | mottaget``; each source line wrapped to ``width``; ``¶`` marks line ends."""

    def column(text: str) -> list[str]:
        out: list[str] = []
        for line in text.split("\n"):
            wrapped = textwrap.wrap(line, width, drop_whitespace=False, replace_whitespace=False) or [""]
            wrapped[-1] += "¶"
            out += wrapped
        return out

    left, right = column(sent), column(received)
    rows = [f"  {'skickat':<{width + 1}} | mottaget"]
    for x, y in zip_longest(left, right, fillvalue=""):
        marker = " " if x == y else "≠"
        rows.append(f"{marker} {x:<{width + 1}} | {y}")
    return "\n".join(rows)


def word_changes(sent: str, received: str) -> tuple[list[str], list[str]]:
    """Words present in one text and not at that place in the other (missing, added)."""
    a, b = _WORDS.findall(sent), _WORDS.findall(received)
    missing: list[str] = []
    added: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            missing += a[i1:i2]
        if tag in ("insert", "replace"):
            added += b[j1:j2]
    return missing, added
