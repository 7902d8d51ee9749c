"""Text a device or peer supplied, made safe for every place the harness shows it.

A printer's ``printer-state-message``, its make and model, an SNMP ``sysDescr``, a ZPL
``~HI`` answer, a lab's MSA-3: the peer chooses these bytes. Shown raw, a newline starts a
new line of a Markdown table or of the terminal summary (an injected ``| READY |`` row), and
an escape sequence clears the operator's screen or paints a green GO. So such text is
cleaned once, where it enters a result record (the probe's readiness record, the device
report, the MLLP failure), and every sink — terminal, ``hardware-readiness.md``,
``gonogo.{md,html}``, Allure — gets the clean text:

    clean(text)    one line: escape sequences (ESC …, CSI, OSC, DCS) removed, other control
                   characters (C0, DEL, C1) and bidirectional overrides removed, line breaks
                   and other whitespace as one space, at most ``limit`` characters
    md_cell(text)  clean, and ``|`` escaped for a Markdown table cell

HTML sinks escape on their own (the autoescaped templates of ``rehearsal.templating``);
Markdown and the terminal have no such step, so these two are the contract (the pack's
Markdown template prints every value through them).
"""

from __future__ import annotations

import re

LIMIT = 300
#: ESC/C1 sequences: CSI (ESC [ or 0x9b) … final byte; OSC/DCS/SOS/PM/APC (ESC ] P X ^ _ or C1) up
#: to their terminator (BEL or ST) or the end; any other ESC with its intermediates and final byte.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
_SPACE = re.compile(r"\s+")


def clean(text: str, limit: int = LIMIT) -> str:
    """``text`` as one line of plain characters (see the module docstring); '' stays ''."""
    if text.isprintable() and len(text) <= limit and "  " not in text and text == text.strip():
        return text  # the common case: nothing to do, fast (a sweep of thousands calls this a lot)
    text = _SEQUENCES.sub("", text)
    # whitespace of any kind (CR, LF, TAB, NEL, U+2028 …) is a space; what str.isprintable()
    # refuses besides (C0, DEL, C1, format characters such as the bidi overrides) is dropped
    text = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or ch.isprintable())
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def md_cell(text: str, limit: int = LIMIT) -> str:
    """:func:`clean`, with ``|`` and a leading/trailing backslash made literal for a Markdown table."""
    return clean(text, limit).replace("\\", "\\\\").replace("|", "\\|")


__all__ = ["LIMIT", "clean", "md_cell"]
