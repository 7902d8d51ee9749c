"""Secrets out of every artifact: the one redaction step for what the harness writes or attaches.

A report is read by people who must never learn a clinician's password, and a failing run
holds credentials in many disguises: the ``fill`` value and the login POST in a Playwright
trace, an ``Authorization`` header a server echoes in its error body, a traceback's locals.
So everything the harness writes (Allure results and attachments, traces, pytest.log) goes
through a :class:`Redactor` before it reaches disk.

What is masked:

* **known values** (the passwords in the environment variables the plan's users name in
  ``password_env``, and anything :func:`register`-ed) in every spelling an artifact keeps
  them in: raw, URL-encoded (any hex case, ``+`` for a space), JSON-escaped (also escaped
  twice), HTML character references, any mix of these character by character, and base64
  (alone, at any offset inside a longer base64 text, and as HTTP Basic's ``user:password``);
* **credentials in their usual places**, known or not: the value of an ``Authorization``,
  ``Proxy-Authorization``, ``Cookie`` or ``Set-Cookie`` header (as a header line, a Python
  mapping or a HAR/trace ``{"name": …, "value": …}`` pair), ``Basic``/``Bearer`` tokens, the
  password of a URL's ``user:pass@``, cookie values in a browser's cookie records, and
  ``password=``/``"password": …`` style fields;
* **patient numbers**: every personnummer, samordningsnummer and reservnummer in any
  separator form, masked as :func:`rehearsal.patient_gate.mask_all` does (``19121212-****``).

Process-wide state, like :mod:`rehearsal.silence`: the plugin registers the plan's secrets
once per session (:func:`register_plan`) and the module functions use them; the CLI builds
its own :class:`Redactor` for the log it writes. Values shorter than :data:`MIN_SECRET`
characters are not masked as values (they would mask ordinary words), only by position.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rehearsal import patient_gate
from rehearsal.plan import Plan

__all__ = [
    "MASK",
    "Redactor",
    "data",
    "file",
    "for_plan",
    "json_value",
    "register",
    "register_plan",
    "reset",
    "text",
    "zip_archive",
]

MASK = "[maskerat]"
MIN_SECRET = 4
_HEX = "0123456789abcdef"


# -- the spellings of one character, one function per form -----------------------------------------


def _hex_any_case(byte: int) -> str:
    """``%C3`` as a pattern that also matches ``%c3``."""
    hi, lo = _HEX[byte >> 4], _HEX[byte & 15]
    return "%" + "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in (hi, lo))


def _url_spellings(ch: str) -> list[str]:
    """Percent-encoding of the character's UTF-8 bytes (either hex case); ``+`` for a space."""
    found = ["".join(_hex_any_case(b) for b in ch.encode("utf-8"))]
    if ch == " ":
        found.append(r"\+")
    return found


def _json_spellings(ch: str) -> list[str]:
    """``\\u00f6`` (either case), ``\\"``, ``\\\\``, ``\\/`` and the short escapes; each also escaped
    again (JSON inside a JSON string), so any number of backslashes before it."""
    units = ch.encode("utf-16-be")
    code = "".join(
        r"\\+u"
        + "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in f"{units[i] << 8 | units[i + 1]:04x}")
        for i in range(0, len(units), 2)
    )
    found = [code]
    short = {'"': '"', "\\": r"\\", "/": "/", "\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}
    if ch in short:
        found.append(r"\\+" + short[ch])
    return found


def _html_spellings(ch: str) -> list[str]:
    """``&#246;``, ``&#xf6;`` and named references such as ``&quot;`` (as DOM snapshots hold them)."""
    found = [f"&#0*{ord(ch)};", f"&#[xX]0*(?:{ord(ch):x}|{ord(ch):X});"]
    named = html.escape(ch, quote=True)
    if named != ch:
        found.append(re.escape(named))
    return found


def _char_pattern(ch: str) -> str:
    spellings = [re.escape(ch), *_url_spellings(ch), *_json_spellings(ch), *_html_spellings(ch)]
    return "(?:" + "|".join(spellings) + ")"


def _spelled_pattern(secret: str) -> str:
    """The secret with each character in any of its spellings: raw, URL, JSON, HTML, or a mix."""
    return "".join(_char_pattern(ch) for ch in secret)


def _base64_forms(secret: str, users: Iterable[str] = ()) -> set[str]:
    """Base64 (standard and URL-safe) of the secret, of ``user:secret``, and the part of it that
    is the same wherever the secret starts inside a longer base64 text (three byte offsets)."""
    raw = secret.encode("utf-8")
    found: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.add(encode(raw).decode().rstrip("="))
        for user in users:
            found.add(encode(f"{user}:{secret}".encode()).decode().rstrip("="))
        for pad in (1, 2):
            core = encode(b"\0" * pad + raw).decode()[4:]
            core = core[: len(core) - 4]  # the last group mixes in whatever follows
            if len(core) >= 8:
                found.add(core)
    return {f for f in found if len(f) >= MIN_SECRET}


# -- credentials by position, known or not ------------------------------------------------------------

_VALUE = r"(?:[^\"\\\r\n]|\\.)*"  # a JSON string's content
_AUTH_NAMES = r"(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token"
_FIELD_NAMES = (
    r"password|passwd|pwd|l[öo]senord|passphrase|secret|client_secret|api_?key|"
    r"access_token|refresh_token|id_token|session_token"
)
_TOKEN = r"(?=[A-Za-z0-9+/_.~-]{8,})(?=[A-Za-z0-9+/_.~-]*?[0-9+/=])[A-Za-z0-9+/_.~-]+=*"
_POSITIONAL: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # {"name": "Authorization", "value": "Basic …"} as in HAR files and Playwright traces
    (re.compile(rf'("name"\s*:\s*"(?i:{_AUTH_NAMES})"\s*,\s*"value"\s*:\s*"){_VALUE}(")'), rf"\1{MASK}\2"),
    # a browser's cookie record: {"name": "ehr_session", "value": "…", "domain"|"url"|"path": …}
    (
        re.compile(
            rf'("name"\s*:\s*"{_VALUE}"\s*,\s*"value"\s*:\s*"){_VALUE}("\s*,\s*"(?:domain|url|path)")'
        ),
        rf"\1{MASK}\2",
    ),  # fmt: skip
    # Authorization: Basic …  /  'authorization': 'Bearer …'  /  "Cookie": "a=b; c=d"
    (
        re.compile(
            rf"""(?i)(\b(?:{_AUTH_NAMES})\b["']?\s*[:=]\s*["']?)(?:(basic|bearer|digest|token|negotiate)\s+)?"""
            r"""((?:[^\r\n"'\\]|\\[^"'])+)"""
        ),
        lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}",
    ),  # fmt: skip
    (re.compile(rf"\b(Basic|Bearer)(\s+){_TOKEN}"), rf"\1\2{MASK}"),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"'<>]+:)[^/\s@\"'<>]+@"), rf"\1{MASK}@"),
    # password=… in forms and query strings, "password": "…" and password='…' in reprs
    (re.compile(rf"(?i)(\b(?:{_FIELD_NAMES})=)[^&\s\"'<>]+"), rf"\1{MASK}"),
    (
        re.compile(
            rf"""(?i)(["']?\b(?:{_FIELD_NAMES})\b["']?\s*[:=]\s*)("{_VALUE}"|'(?:[^'\\\r\n]|\\.)*')"""
        ),
        lambda m: f"{m.group(1)}{m.group(2)[0]}{MASK}{m.group(2)[0]}",
    ),  # fmt: skip
]


class Redactor:
    """Masks a fixed set of secret values (and credentials by position) in text, bytes and files."""

    def __init__(self, secrets: Iterable[str] = (), users: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET)
        self.users = frozenset(u for u in users if u)
        spelled = sorted(self.secrets, key=len, reverse=True)
        encoded = sorted(
            {f for s in self.secrets for f in _base64_forms(s, self.users)}, key=len, reverse=True
        )
        parts = [*(re.escape(f) + "=*" for f in encoded), *(_spelled_pattern(s) for s in spelled)]
        self._known = re.compile("|".join(parts)) if parts else None
        byte_parts = [*(re.escape(f).encode() + b"=*" for f in encoded), *(_byte_pattern(s) for s in spelled)]
        self._known_bytes = re.compile(b"|".join(byte_parts)) if byte_parts else None

    def text(self, value: str) -> str:
        """``value`` with every known secret and every positional credential masked."""
        if self._known is not None:
            value = self._known.sub(MASK, value)
        for pattern, replacement in _POSITIONAL:
            value = pattern.sub(replacement, value)
        return patient_gate.mask_all(value)  # and no patient number whole (19121212-****)

    def data(self, value: bytes) -> bytes:
        """Bytes: known secrets masked anywhere (also in binary data); text (UTF-8) as :meth:`text`."""
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            return self._known_bytes.sub(MASK.encode(), value) if self._known_bytes is not None else value
        masked = self.text(decoded)
        return value if masked == decoded else masked.encode("utf-8")

    def json_value(self, value: Any) -> Any:
        """A JSON-like structure with every string in it (keys too) as :meth:`text`."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.json_value(k): self.json_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json_value(v) for v in value]
        return value

    def zip_archive(self, value: bytes) -> bytes:
        """A zip with every member's content (and name) redacted, nested zips too; the archive stays
        a valid zip with the same members in the same order (a Playwright trace still opens)."""
        out = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(value)) as source,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
        ):
            for info in source.infolist():
                content = source.read(info)
                content = self.zip_archive(content) if _is_zip(content) else self.data(content)
                member = zipfile.ZipInfo(self.text(info.filename), date_time=info.date_time)
                member.compress_type = zipfile.ZIP_DEFLATED
                member.external_attr = info.external_attr
                target.writestr(member, content)
        return out.getvalue()

    def bytes_by_kind(self, value: bytes) -> bytes:
        """A zip as :meth:`zip_archive`, anything else as :meth:`data`."""
        if _is_zip(value):
            try:
                return self.zip_archive(value)
            except (zipfile.BadZipFile, EOFError, ValueError):
                pass  # not a readable zip after all: scrub it as plain bytes
        return self.data(value)

    def file(self, path: str | Path) -> None:
        """Redact a file in place, atomically (a temporary beside it, then renamed over it)."""
        path = Path(path)
        original = path.read_bytes()
        masked = self.bytes_by_kind(original)
        if masked == original:
            return
        tmp = path.with_name(f".{path.name}.redact.tmp")
        tmp.write_bytes(masked)
        os.replace(tmp, path)


def _byte_pattern(secret: str) -> bytes:
    """:func:`_spelled_pattern` for bytes; a raw character also in Latin-1 (binary formats)."""
    parts = []
    for ch in secret:
        spellings = [re.escape(ch).encode("utf-8")]
        try:
            latin = re.escape(ch).encode("latin-1")
        except UnicodeEncodeError:
            latin = b""
        if latin and latin not in spellings:
            spellings.append(latin)
        spellings += [
            s.encode("ascii") for s in (*_url_spellings(ch), *_json_spellings(ch), *_html_spellings(ch))
        ]
        parts.append(b"(?:" + b"|".join(spellings) + b")")
    return b"".join(parts)


def _is_zip(value: bytes) -> bool:
    return value[:4] == b"PK\x03\x04"


def for_plan(plan: Plan, environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Redactor:
    """A redactor for the passwords of the plan's users (from their ``password_env`` variables)."""
    environ = os.environ if environ is None else environ
    users = [u for s in plan.sites for u in s.users]
    secrets = {environ[u.password_env] for u in users if environ.get(u.password_env)}
    return Redactor([*secrets, *extra], [u.hsa_id for u in users])


# -- the process-wide redactor (the pytest session's) ------------------------------------------------

_lock = threading.Lock()
_secrets: set[str] = set()
_users: set[str] = set()
_current = Redactor()


def register(*values: str, users: Iterable[str] = ()) -> None:
    """Make values secret for the rest of this process (a session token, a password learnt late)."""
    global _current
    with _lock:
        _secrets.update(v for v in values if v)
        _users.update(users)
        _current = Redactor(_secrets, _users)


def register_plan(plan: Plan, environ: Mapping[str, str] | None = None) -> None:
    """Make the plan's users' passwords (from the environment) secret for this process."""
    made = for_plan(plan, environ)
    register(*made.secrets, users=made.users)


def reset() -> None:
    """Forget every registered secret (end of a session)."""
    global _current
    with _lock:
        _secrets.clear()
        _users.clear()
        _current = Redactor()


def current() -> Redactor:
    return _current


def text(value: str) -> str:
    return _current.text(value)


def data(value: bytes) -> bytes:
    return _current.data(value)


def json_value(value: Any) -> Any:
    return _current.json_value(value)


def zip_archive(value: bytes) -> bytes:
    return _current.zip_archive(value)


def file(path: str | Path) -> None:
    _current.file(path)
