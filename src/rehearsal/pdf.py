"""The one PDF writer: a one-page text document, what a printer is sent to prove it prints.

Used by the sweep's test print (:mod:`rehearsal.hardware`) and by the reference EHR's
document printing (:mod:`reference_hospital.printing`). No library: a page of Helvetica
lines is five PDF objects, and ippeveprinter, CUPS and office printers take it as it is.

    simple_pdf(title, lines) -> bytes
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_LINES = 45  # what fits below the title on an A4 page at 11 pt


def _text(value: str) -> bytes:
    """A PDF string's content: Latin-1 (WinAnsi, so å/ä/ö print), backslash and parentheses escaped."""
    raw = value.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def simple_pdf(title: str, lines: Sequence[str]) -> bytes:
    """A one-page A4 PDF with a title and up to :data:`MAX_LINES` lines of text (Helvetica)."""
    content = b"BT /F1 16 Tf 50 790 Td (" + _text(title) + b") Tj ET\n"
    for index, line in enumerate(lines[:MAX_LINES]):
        content += b"BT /F1 11 Tf 50 %d Td (" % (760 - 16 * index) + _text(line) + b") Tj ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    pdf = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return pdf


__all__ = ["MAX_LINES", "simple_pdf"]
