"""Swedish identifiers: personnummer, samordningsnummer and HSA-id, checked by their rules.

Test identities cannot be told from real ones by their form (no range is reserved), so
the harness only ever touches the identities listed in the plan; these checks make
sure the list itself holds well-formed numbers.
"""

from __future__ import annotations

import re
from datetime import date

PERSONNUMMER_OID = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_OID = "1.2.752.129.2.1.3.3"
HSA_ID_SYSTEM = "urn:oid:1.2.752.29.4.19"

_PNR = re.compile(r"^(\d{8})([-+])(\d{4})$")
_HSA = re.compile(r"^SE\d{10}-[A-Za-z0-9]+$")


class IdentityError(ValueError):
    """An identifier that breaks its format rules."""


def luhn_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(digits):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


def check_personnummer(value: str) -> str:
    """Accept `YYYYMMDD-NNNC` (or `+`), samordningsnummer included (day + 60)."""
    m = _PNR.match(value)
    if not m:
        raise IdentityError(f"personnummer must look like YYYYMMDD-NNNC, got {value!r}")
    ymd, _, tail = m.groups()
    year, month, day = int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8])
    if day > 60:
        day -= 60
    try:
        date(year, month, day)
    except ValueError:
        raise IdentityError(f"personnummer {value!r} has no valid date of birth") from None
    if luhn_digit(ymd[2:] + tail[:3]) != int(tail[3]):
        raise IdentityError(f"personnummer {value!r} fails its check digit")
    return value


def is_samordningsnummer(value: str) -> bool:
    return int(value[6:8]) > 60


def check_hsa_id(value: str) -> str:
    if len(value) > 31 or not _HSA.match(value):
        raise IdentityError(
            f"HSA-id must be SE + 10 digits + '-' + letters/digits (at most 31 characters), got {value!r}"
        )
    return value
