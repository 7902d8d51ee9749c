"""Swedish identifiers: personnummer, samordningsnummer, HSA-id and VGR reservnummer, checked by their rules.

Test identities cannot be told from real ones by their form (no range is reserved), so
the harness only ever touches the identities listed in the plan; these checks make
sure the list itself holds well-formed numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


# -- VGR reservnummer (reserve identity for an unidentified patient) -------------------------------

RESERVNUMMER_OID = "1.2.752.113.11.0.2.1.1.1"
#: The letter G stands in for a digit in the Luhn sum; letters mean it never collides with a personnummer.
RESERVNUMMER_LETTERS = {"K": 5, "M": 7, "X": 8}
RESERVNUMMER_DEFAULT_LETTER = "M"
_RESERV = re.compile(r"^(\d{8})([KMX])(\d{2})(\d)$")
#: Serial numbers gg by sex: odd 07–79 men, even 06–78 women, 80–89 sex unknown.
RESERVNUMMER_SERIALS: dict[str, tuple[int, ...]] = {
    "male": tuple(range(7, 80, 2)),
    "female": tuple(range(6, 80, 2)),
    "unknown": tuple(range(80, 90)),
}


def _reserv_check_digit(yyyymmdd: str, letter: str, serial: str) -> int:
    return luhn_digit(yyyymmdd[2:] + str(RESERVNUMMER_LETTERS[letter]) + serial)


def check_reservnummer(value: str) -> str:
    """Accept a VGR reservnummer ``yyyymmddGggC``: G in K/M/X, gg 06–89, Luhn with K=5, M=7, X=8."""
    m = _RESERV.match(value)
    if not m:
        raise IdentityError(f"reservnummer must look like ÅÅÅÅMMDD + K/M/X + 3 digits, got {value!r}")
    ymd, letter, serial, check = m.groups()
    try:
        date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8]))
    except ValueError:
        raise IdentityError(f"reservnummer {value!r} has no valid date") from None
    if not 6 <= int(serial) <= 89:
        raise IdentityError(f"reservnummer {value!r}: serial {serial} is outside 06–89")
    if _reserv_check_digit(ymd, letter, serial) != int(check):
        raise IdentityError(f"reservnummer {value!r} fails its check digit")
    return value


def is_reservnummer(value: str) -> bool:
    try:
        check_reservnummer(value)
    except IdentityError:
        return False
    return True


def reservnummer_sex(value: str) -> str:
    """``male``, ``female`` or ``unknown``, from the serial (odd men, even women, 80–89 unknown)."""
    serial = int(check_reservnummer(value)[9:11])
    if serial >= 80:
        return "unknown"
    return "male" if serial % 2 else "female"


def make_reservnummer(
    day: date, sex: str, taken: Iterable[str] = (), letter: str = RESERVNUMMER_DEFAULT_LETTER
) -> str:
    """The first free reservnummer for this date and sex (``male``/``female``/``unknown``).

    ``taken`` are the reservnummer already issued; IdentityError when every serial of
    that date and sex is used (37 per sex and day, 10 for unknown sex).
    """
    if sex not in RESERVNUMMER_SERIALS:
        raise IdentityError(f"sex must be one of {', '.join(RESERVNUMMER_SERIALS)}, got {sex!r}")
    if letter not in RESERVNUMMER_LETTERS:
        raise IdentityError(f"reservnummer letter must be K, M or X, got {letter!r}")
    used = set(taken)
    ymd = day.strftime("%Y%m%d")
    for serial in RESERVNUMMER_SERIALS[sex]:
        gg = f"{serial:02d}"
        candidate = f"{ymd}{letter}{gg}{_reserv_check_digit(ymd, letter, gg)}"
        if candidate not in used:
            return candidate
    raise IdentityError(f"every reservnummer for {day.isoformat()} ({sex}, {letter}) is already issued")


# -- FHIR search values -----------------------------------------------------------------------------


def personnummer_tokens(personnummer: str) -> list[str]:
    """The FHIR ``identifier`` search values (``system|value``) a patient with this number may be
    stored under: the 12 digits first (the Swedish profiles store ``193912099805``), then the number
    as written (``19391209-9805``), both under its own system (samordningsnummer: its own OID).

    A third-party FHIR server matches a token exactly, so the harness asks for both forms; joined
    by commas they are one search (FHIR's OR within a parameter). Anything that is not a
    personnummer or samordningsnummer (a reservnummer, a bare value) is searched as given.
    """
    text = personnummer.strip()
    digits = text.replace("-", "").replace("+", "")
    if len(digits) != 12 or not digits.isdigit():
        return [text]
    oid = SAMORDNINGSNUMMER_OID if is_samordningsnummer(digits) else PERSONNUMMER_OID
    return [f"urn:oid:{oid}|{value}" for value in dict.fromkeys((digits, text))]
