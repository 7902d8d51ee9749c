"""The redactor on its own: every spelling of a known password, credentials by position, zips.

The end-to-end proof is tests/test_secrets_scan.py; these pin each form in milliseconds, and
that ordinary text (ports in URLs, "Basic authentication", `password_env`) is left alone.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from html import escape
from urllib.parse import quote, quote_plus

import pytest

from rehearsal import evidence, redact
from rehearsal.redact import MASK, Redactor

PASSWORD = 'Rött"Lösen/7f+3a%9c\\Q'
USER = "SE2321000131-P000000000101"
R = Redactor([PASSWORD], [USER])


def spellings() -> dict[str, str]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return {
        "raw": PASSWORD,
        "url": quote(PASSWORD, safe=""),
        "url lower hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(PASSWORD, safe="")),
        "url plus": quote_plus(PASSWORD),
        "json": json.dumps(PASSWORD, ensure_ascii=False)[1:-1],
        "json ascii": json.dumps(PASSWORD)[1:-1],
        "json twice": json.dumps(json.dumps(PASSWORD))[1:-1],
        "html": escape(PASSWORD),
        "html numeric": "".join(f"&#{ord(c)};" for c in PASSWORD),
        "base64": base64.b64encode(PASSWORD.encode()).decode(),
        "base64 urlsafe": base64.urlsafe_b64encode(PASSWORD.encode()).decode(),
        "base64 inside": base64.b64encode(b'{"x": "' + PASSWORD.encode() + b'"}').decode(),
        "basic": basic,
    }


@pytest.mark.parametrize("form", list(spellings()))
def test_every_spelling_of_a_known_password_is_masked(form):
    spelled = spellings()[form]
    for masked in (
        R.text(f"<{spelled}>"),
        R.data(f"<{spelled}>".encode()).decode(),
        R.data(b"\xff" + spelled.encode()),
    ):
        assert spelled not in str(masked) and MASK in str(masked)


def test_base64_inside_a_longer_text_keeps_nothing_of_the_password():
    blob = base64.b64encode(b"prefix " + PASSWORD.encode() + b" suffix").decode()
    masked = R.text(blob)
    for pad in range(3):  # whatever offset the secret had, its middle is gone
        core = base64.b64encode(b"\0" * pad + PASSWORD.encode()).decode()[4:-4]
        assert core not in masked


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Authorization: Basic dXNlcjpwYXNz9w== (echoed)", f"Authorization: Basic {MASK}"),
        ('{"authorization": "Bearer eyJhbGciOi.x.y"}', f'{{"authorization": "Bearer {MASK}"}}'),
        ("{'Cookie': 'ehr_session=abc123'}", f"{{'Cookie': '{MASK}'}}"),
        ('[{"name":"Authorization","value":"Basic x"}]', f'[{{"name":"Authorization","value":"{MASK}"}}]'),
        (
            '{"name":"ehr_session","value":"tok","domain":"h"}',
            f'{{"name":"ehr_session","value":"{MASK}","domain":"h"}}',
        ),
        ("sent Bearer abcDEF123456789 to it", f"sent Bearer {MASK} to it"),
        ("http://bob:s3cret@127.0.0.1:8080/fhir", f"http://bob:{MASK}@127.0.0.1:8080/fhir"),
        ("hsa_id=SE1&password=abc%2Fd&x=1", f"hsa_id=SE1&password={MASK}&x=1"),
        ("Login(user='SE1', password='x y')", f"Login(user='SE1', password='{MASK}')"),
        ('{"lösenord": "hemligt"}', f'{{"lösenord": "{MASK}"}}'),
    ],
)
def test_credentials_by_position_are_masked_known_or_not(given, expected):
    assert R.text(given).startswith(expected)


@pytest.mark.parametrize(
    "ordinary",
    [
        "http://127.0.0.1:8080/fhir/Patient?name=Tolvan",  # a patient number is masked (patient_gate)
        "With HTTP Basic authentication (HSA-id and password of a plan user)",
        "password_env: REHEARSAL_PASSWORD",
        '<input id="password" name="password" type="password">',
        '{"name":"Content-Type","value":"text/html"}',
    ],
)
def test_ordinary_text_is_left_alone(ordinary):
    assert R.text(ordinary) == ordinary


def test_a_zip_is_rewritten_member_by_member_and_stays_a_zip():
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("nested.txt", PASSWORD)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("trace.trace", json.dumps({"method": "fill", "params": {"value": PASSWORD}}) + "\n")
        z.writestr("resources/body.dat", f"hsa_id={USER}&password={quote_plus(PASSWORD)}")
        z.writestr("inner.zip", inner.getvalue())
        z.writestr("screencast/a.jpeg", b"\xff\xd8\xff\xe0 binary " + PASSWORD.encode("latin-1", "replace"))
    masked = zipfile.ZipFile(io.BytesIO(R.bytes_by_kind(outer.getvalue())))
    assert masked.testzip() is None
    assert masked.namelist() == ["trace.trace", "resources/body.dat", "inner.zip", "screencast/a.jpeg"]
    assert json.loads(masked.read("trace.trace"))["params"]["value"] == MASK
    assert masked.read("resources/body.dat").decode() == f"hsa_id={USER}&password={MASK}"
    assert zipfile.ZipFile(io.BytesIO(masked.read("inner.zip"))).read("nested.txt").decode() == MASK


def test_the_plan_names_the_secrets(make_plan, monkeypatch):
    from rehearsal.plan import load_plan

    monkeypatch.setenv("REHEARSAL_PASSWORD", PASSWORD)
    made = redact.for_plan(load_plan(make_plan()).plan)
    assert made.secrets == {PASSWORD} and USER in made.users
    assert made.text(f"x {PASSWORD} y") == f"x {MASK} y"
    monkeypatch.delenv("REHEARSAL_PASSWORD")
    assert redact.for_plan(load_plan(make_plan()).plan).secrets == frozenset()


def test_allure_writes_results_and_attachments_redacted(tmp_path):
    """allure-pytest's own writer, made redacting, on a result and two attachments."""
    import allure_commons
    from allure_commons.logger import AllureFileLogger
    from allure_commons.model2 import StatusDetails, TestResult

    logger = AllureFileLogger(tmp_path)
    allure_commons.plugin_manager.register(logger)
    redact.register(PASSWORD, users=[USER])
    try:
        evidence.redact_results()
        assert type(logger) is evidence.RedactingFileLogger
        allure_commons.plugin_manager.hook.report_result(
            result=TestResult(
                uuid="u1", name=f"login as {USER}", statusDetails=StatusDetails(message=f"got {PASSWORD}")
            )
        )
        allure_commons.plugin_manager.hook.report_attached_data(
            body=f"Authorization: {PASSWORD}", file_name="a.txt"
        )
        source = tmp_path / "src.json"
        source.write_text(json.dumps({"p": PASSWORD}))
        allure_commons.plugin_manager.hook.report_attached_file(source=str(source), file_name="b.json")
    finally:
        allure_commons.plugin_manager.unregister(logger)
        redact.reset()
    source.unlink()
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    assert len(written) == 3 and not [n for n, t in written.items() if "Lösen" in t or "L\\u00f6sen" in t]
    result = json.loads(next(t for n, t in written.items() if n.endswith("-result.json")))
    assert result["statusDetails"]["message"] == f"got {MASK}" and result["name"] == f"login as {USER}"
