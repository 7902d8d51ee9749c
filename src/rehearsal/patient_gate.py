"""The run touches only its own patients: the plan's test identities and the reservnummer it made.

A rehearsal runs in environments that may hold copies of real records. :mod:`rehearsal.guard`
finds out afterwards who was touched; this gate stops it beforehand. The pytest plugin
closes the gate at the start of a run (:func:`only`), the steps that register a reserve
identity open it for that number (:func:`admit`), and every page object and client call
that creates, opens or searches a patient by number asks :func:`check` first. A refusal is
a :class:`NotATestIdentity`: the step fails with one line and nothing is sent.

Screenshots and traces are evidence that leaves the hospital in a report, so the plugin
also asks :func:`foreign_in` what the page shows before it takes one: a page that shows
any other identity is not photographed. Numbers are masked (``19121212-****``) wherever
this module puts them in a message, so a refusal never copies a real number into a report.

Outside a run (library use, unit tests of clients) the gate is open: nothing has said
which patients are the run's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rehearsal.errors import UsageError
from rehearsal.identities import IdentityError, check_personnummer, is_reservnummer

_allowed: set[str] | None = None

# A personnummer or samordningsnummer in running text (with or without century and
# separator), or a VGR reservnummer; checked by its own rules before it counts.
_NUMBER = re.compile(r"(?<![\dA-Za-z])(\d{2})?(\d{6})([-+]?)(\d{4})(?![\dA-Za-z])")
_RESERV = re.compile(r"(?<![\dA-Za-z])(\d{8}[KMX]\d{3})(?![\dA-Za-z])")


class NotATestIdentity(UsageError):
    """The harness was about to touch a patient that is not one of the run's own."""


def key(identity: str) -> str:
    """The comparable form: digits (and the reservnummer letter), no separator, upper case."""
    return re.sub(r"[\s+-]", "", identity).upper()


def _short(value: str) -> str:
    # Compared without the century, so 121212-1212 on a screen is Tolvan's 19121212-1212.
    return value[-10:] if value.isdigit() else value


def mask(identity: str) -> str:
    """Enough to find the record again with the hospital's own tools, not the whole number."""
    value = key(identity)
    return f"{value[:-4]}-****" if len(value) > 4 else "****"


def only(identities: Iterable[str]) -> None:
    """Close the gate to everyone but these (the plan's ``test_identities``)."""
    global _allowed
    _allowed = {_short(key(i)) for i in identities}


def admit(identity: str) -> None:
    """Let in a reservnummer the run has just made for an unidentified patient."""
    if _allowed is not None:
        _allowed.add(_short(key(identity)))


def reopen() -> None:
    """Back to no gate (the end of a run, or a test that closed it)."""
    global _allowed
    _allowed = None


def allowed(identity: str) -> bool:
    return _allowed is None or _short(key(identity)) in _allowed


def check(identity: str, doing: str) -> str:
    """``identity`` if the run may touch it; otherwise :class:`NotATestIdentity` naming what was refused.

    A value that is no valid identity at all (a name, a number failing its check digit) is no
    one's, so it passes: the EHR's own refusal of such a number is something to rehearse.
    """
    if identities_in(identity) and not allowed(identity):
        raise NotATestIdentity(
            f"vägrar {doing} patient {mask(identity)}: inte en av planens testidentiteter "
            "(test_identities) eller ett reservnummer som repetitionen skapat"
        )
    return identity


def _valid(candidate: str) -> bool:
    try:
        check_personnummer(candidate)
    except IdentityError:
        return False
    return True


def identities_in(text: str) -> list[str]:
    """Every valid personnummer, samordningsnummer or reservnummer in ``text``, as written there.

    A number written without its century (``121212-1212``) counts when some century makes it
    valid (it is compared with the run's own on its last ten digits).
    """
    found: list[str] = []
    for century, ymd, _sep, tail in _NUMBER.findall(text):
        centuries = [century] if century else ["20", "19", "18"]
        if any(_valid(f"{c}{ymd}-{tail}") for c in centuries):
            found.append(f"{century}{ymd}-{tail}")
    found += [r for r in _RESERV.findall(text) if is_reservnummer(r)]
    return list(dict.fromkeys(found))


def foreign_in(text: str) -> list[str]:
    """The identities in ``text`` the run may not touch (masked), e.g. on a page about to be photographed."""
    return [mask(i) for i in identities_in(text) if not allowed(i)]
