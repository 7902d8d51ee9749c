"""The run touches only its own patients: the plan's test identities and the reservnummer it made.

A rehearsal runs in environments that may hold copies of real records. :mod:`rehearsal.guard`
finds out afterwards who was touched; this gate stops it beforehand. The pytest plugin
closes the gate at the start of a run (:func:`only`), the steps that register a reserve
identity open it for that number (:func:`admit`), and every page object and client call
that creates, opens or searches a patient by number asks :func:`check` first. A refusal is
a :class:`NotATestIdentity`: the step fails with one line and nothing is sent.

Screenshots and traces are evidence that leaves the hospital in a report, so the plugin
asks :func:`foreign_on_page` what the page can show before it takes one: not only the
body's text but every frame (cross-origin ones too), field values, generated content
(CSS ``::before``/``::after``), attributes a trace snapshot keeps (title, alt, aria-label,
placeholder, …), hidden text and the address. A page that shows any other identity is not
photographed and its trace is not kept. Numbers are recognised in any separator form
(hyphen, the dashes, a space, ``+`` for 100 years or more, none) and masked
(``19121212-****``) by :func:`mask_all` wherever a message or attachment is made, so a
refusal never copies a real number into a report.

Outside a run (library use, unit tests of clients) the gate is open: nothing has said
which patients are the run's.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rehearsal.errors import UsageError
from rehearsal.identities import IdentityError, check_personnummer, is_reservnummer

_allowed: set[str] | None = None
#: The allowed identities as given (searchable forms), for the guard's look-ups.
_given: list[str] = []

#: Between date and serial: a hyphen or any dash (en, em, figure, minus, non-breaking, …),
#: optionally spaced; ``+`` (100 years or more); one space of any width; or nothing.
_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_SPACE = "[ \u00a0\u2007\u2009\u200a\u202f]"
_SEP = f"(?:{_SPACE}?[{_DASHES}+\uff0b]{_SPACE}?|{_SPACE})?"
# A personnummer or samordningsnummer in running text (with or without century), or a VGR
# reservnummer; checked by its own rules before it counts. Not inside a longer word or number.
_NUMBER = re.compile(rf"(?<![\dA-Za-z])(\d{{2}})?(\d{{6}}){_SEP}(\d{{4}})(?![\dA-Za-z])")
_RESERV = re.compile(r"(?<![\dA-Za-z])(\d{8}[KMXkmx]\d{3})(?![\dA-Za-z])")
_NOT_KEY = re.compile(f"[\\s{_DASHES}+\uff0b]")


class NotATestIdentity(UsageError):
    """The harness was about to touch a patient that is not one of the run's own."""


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in text)


def key(identity: str) -> str:
    """The comparable form: ASCII digits (and the reservnummer letter), no separator, upper case."""
    return _ascii_digits(_NOT_KEY.sub("", identity)).upper()


def _short(value: str) -> str:
    # Compared without the century, so 121212-1212 on a screen is Tolvan's 19121212-1212.
    return value[-10:] if value.isdigit() else value


def mask(identity: str) -> str:
    """Enough to find the record again with the hospital's own tools, not the whole number."""
    value = key(identity)
    return f"{value[:-4]}-****" if len(value) > 4 else "****"


def only(identities: Iterable[str]) -> None:
    """Close the gate to everyone but these (the plan's ``test_identities``)."""
    global _allowed, _given
    _given = list(dict.fromkeys(identities))
    _allowed = {_short(key(i)) for i in _given}


def admit(identity: str) -> None:
    """Let in a reservnummer the run has just made for an unidentified patient."""
    if _allowed is not None:
        _allowed.add(_short(key(identity)))
        _given.append(identity)


def reopen() -> None:
    """Back to no gate (the end of a run, or a test that closed it)."""
    global _allowed, _given
    _allowed, _given = None, []


def is_closed() -> bool:
    return _allowed is not None


def own() -> list[str]:
    """The identities the run may touch, as given (empty when the gate is open: nobody said)."""
    return list(dict.fromkeys(_given))


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


@functools.lru_cache(maxsize=4096)
def _valid(candidate: str) -> bool:
    try:
        check_personnummer(candidate)
    except IdentityError:
        return False
    return True


def _found(text: str) -> list[tuple[int, int, str]]:
    """(start, end, identity as ``[CC]YYMMDD-NNNN`` or the reservnummer) of every identity in ``text``."""
    spans: list[tuple[int, int, str]] = []
    for m in _NUMBER.finditer(text):
        century, ymd, tail = (_ascii_digits(g) if g else g for g in m.groups())
        centuries = [century] if century else ["20", "19", "18"]
        if any(_valid(f"{c}{ymd}-{tail}") for c in centuries):
            spans.append((m.start(), m.end(), f"{century or ''}{ymd}-{tail}"))
    for m in _RESERV.finditer(text):
        number = _ascii_digits(m.group(1)).upper()
        if is_reservnummer(number):
            spans.append((m.start(), m.end(), number))
    return spans


def identities_in(text: str) -> list[str]:
    """Every valid personnummer, samordningsnummer or reservnummer in ``text``, in a plain form.

    Written with any separator (``19121212–1212``, ``121212 1212``, ``121212+1212``) or none.
    A number written without its century (``121212-1212``) counts when some century makes it
    valid (it is compared with the run's own on its last ten digits).
    """
    return list(dict.fromkeys(found for _, _, found in sorted(_found(text))))


def foreign_in(text: str) -> list[str]:
    """The identities in ``text`` the run may not touch (masked), e.g. on a page about to be photographed."""
    return list(dict.fromkeys(mask(i) for i in identities_in(text) if not allowed(i)))


def mask_all(text: str) -> str:
    """``text`` with every identity in it masked (``19121212-****``), the run's own included.

    For every message, attachment and report line the harness makes: a number that is on its
    way into a report is never whole there, whoever's it is.
    """
    if not text:
        return text
    spans = sorted(_found(text))
    out, at = [], 0
    for start, end, identity in spans:
        if start < at:
            continue
        out += [text[at:start], mask(identity)]
        at = end
    return "".join(out) + text[at:]


# -- what a page can show --------------------------------------------------------------------------

#: Gathered in one evaluation per frame: every channel a screenshot or a trace snapshot keeps,
#: one string each, items separated by newlines (which never join two halves of a number).
#: Generated content is read from the elements some readable style rule gives ``content``
#: (reading it on every element costs ~40 µs each); with a stylesheet it cannot read, a
#: keyframe that animates ``content``, or shadow DOM, it is read on every element.
_SHOWN_JS = r"""() => {
  const out = {text: "", nodes: [], attributes: [], values: [], generated: []};
  out.attributes.push(document.title || "", location.href);
  if (document.body) out.text = document.body.innerText || "";
  const elements = [];
  let everyElement = false;
  const visit = (root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT
                                             | NodeFilter.SHOW_COMMENT);
    for (let node = walker.currentNode; node; node = walker.nextNode()) {
      if (node.nodeType !== Node.ELEMENT_NODE) {
        if (node.data && /\d/.test(node.data)) out.nodes.push(node.data);
        continue;
      }
      elements.push(node);
      for (const attr of node.attributes) if (/\d/.test(attr.value)) out.attributes.push(attr.value);
      if ("value" in node && typeof node.value === "string" && node.value) out.values.push(node.value);
      if (node.shadowRoot) { everyElement = true; visit(node.shadowRoot); }
    }
  };
  if (document.documentElement) visit(document.documentElement);
  const PSEUDO = /::?(before|after|marker)\b/gi;
  const targets = new Set();
  const rules = (list) => {
    for (const rule of list) {
      if (rule.cssRules && rule.cssRules.length) rules(rule.cssRules);  // @media, @supports, @layer, nesting
      const content = rule.style ? rule.style.getPropertyValue("content") : "";
      if (!content || content === "none" || content === "normal") continue;
      if (!rule.selectorText) { everyElement = true; continue; }  // a keyframe animating content
      if (!rule.selectorText.match(PSEUDO)) continue;
      try {
        const selector = rule.selectorText.replace(PSEUDO, "") || "*";
        document.querySelectorAll(selector).forEach((e) => targets.add(e));
      } catch (e) { everyElement = true; }
    }
  };
  for (const sheet of [...document.styleSheets, ...(document.adoptedStyleSheets || [])]) {
    let list = null;
    try { list = sheet.cssRules; } catch (e) { everyElement = true; }  // another origin's sheet
    if (list) rules(list);
  }
  for (const node of everyElement ? elements : targets) {
    for (const pseudo of ["::before", "::after", "::marker"]) {
      const content = getComputedStyle(node, pseudo).content;
      if (content && content !== "none" && content !== "normal" && /\d/.test(content))
        out.generated.push(content);
    }
  }
  return [out.text, out.nodes.join("\n"), out.attributes.join("\n"), out.values.join("\n"),
          out.generated.join("\n")];
}"""
_CHANNELS = ("text", "dold text", "attribut", "fältvärde", "genererat innehåll (CSS)")


@dataclass(frozen=True)
class PageCheck:
    """What the gate found on a page: masked foreign identities, where, and frames it could not read."""

    foreign: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.foreign and not self.unreadable

    def reason(self) -> str:
        """One masked line: why the page was not photographed."""
        if self.foreign:
            said = (
                f"Sidan visade {len(self.foreign)} identitet(er) som inte är repetitionens testpatienter "
                f"({', '.join(self.foreign)}) i {', '.join(self.where)}"
            )
        else:
            said = f"Sidan kunde inte granskas ({'; '.join(self.unreadable)})"
        return mask_all(f"{said}; ingen skärmbild och inget Playwright-spår sparas.")


def shown_by(page: Any, timeout_ms: float = 2_000) -> tuple[list[tuple[str, str]], list[str]]:
    """((where, text) for everything ``page`` can show, frame by frame; frames that could not be read).

    ``page`` is a Playwright page. One evaluation per frame, bounded by ``timeout_ms`` while
    the frame's document is found. A frame that cannot be read (detached, hung) shows
    something unknown, so it is named rather than vouched for.
    """
    shown: list[tuple[str, str]] = []
    unreadable: list[str] = []
    for number, frame in enumerate(page.frames):
        where = "sidan" if number == 0 else f"ram {number}"
        try:
            texts = frame.locator(":root").evaluate(_SHOWN_JS, timeout=timeout_ms)
        except Exception as error:  # detached, navigating away, or hung: nothing can be said of it
            first = str(error).splitlines()[0] if str(error) else error.__class__.__name__
            unreadable.append(f"{where}: {first[:200]}")
            continue
        pairs = zip(_CHANNELS, texts, strict=False)
        shown += [(f"{where} ({channel})", text) for channel, text in pairs if isinstance(text, str) and text]
    return shown, unreadable


def foreign_on_page(page: Any) -> PageCheck:
    """What ``page`` shows that the run may not show: nothing to say when the gate is open."""
    if _allowed is None:
        return PageCheck()
    shown, unreadable = shown_by(page)
    found: dict[str, None] = {}
    where: dict[str, None] = {}
    for place, text in shown:
        foreign = foreign_in(text)
        if foreign:
            found.update(dict.fromkeys(foreign))
            where[place] = None
    return PageCheck(tuple(found), tuple(where), tuple(mask_all(u) for u in unreadable))
