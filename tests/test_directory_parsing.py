"""DNs and LDIF as real HSA/KiV exports write them: escapes, multi-valued RDNs, binary values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.clients.directory import dn_parts, parse_ldif, read_ldif


@pytest.mark.parametrize(
    ("dn", "parts"),
    [
        (r"ou=Hud\+Allergi,o=VGR,c=SE", (("ou", "Hud+Allergi"), ("o", "VGR"), ("c", "SE"))),
        (r"ou=A\, B,o=VGR,c=SE", (("ou", "A, B"), ("o", "VGR"), ("c", "SE"))),
        (r"ou=A\2C B,o=VGR,c=SE", (("ou", "A, B"), ("o", "VGR"), ("c", "SE"))),
        (r"ou=Akut+l=Bor\C3\A5s,o=VGR", (("ou", "Akut"), ("o", "VGR"))),  # first value of the RDN
        (r"OU=Kir\\,O=VGR", (("ou", "Kir\\"), ("o", "VGR"))),  # an escaped backslash ends the value
        ("ou=Bor\u00e5s , o=VGR", (("ou", "Borås"), ("o", "VGR"))),
    ],
)
def test_dn_parts_unescape_every_form(dn: str, parts: tuple[tuple[str, str], ...]) -> None:
    assert dn_parts(dn) == parts


EXPORT = """version: 1

dn: o=VGR,c=SE
o: VGR

dn: ou=Hud\\+Allergi,o=VGR,c=SE
ou: Hud+Allergi
hsaIdentity: SE2321000131-E000000000901
objectClass: organizationalUnit

dn: cn=Anna,ou=Hud\\+Allergi,o=VGR,c=SE
objectClass: inetOrgPerson
cn:: QW5uYSDDhXPDpQ==
hsaIdentity: SE2321000131-P000000000901
userCertificate;binary:: MIIBCgKCAQEA/wA=
jpegPhoto:: /9j/4AAQSkZJRg==
"""


def test_a_binary_attribute_does_not_refuse_the_export(tmp_path: Path) -> None:
    records = parse_ldif(EXPORT)
    person = records[-1]
    assert person["cn"] == ["Anna Åså"]
    assert person["userCertificate;binary"] == ["MIIBCgKCAQEA/wA="]  # kept as its base64
    path = tmp_path / "kiv.ldif"
    path.write_text(EXPORT, encoding="utf-8")
    snap = read_ldif(path, "o=VGR,c=SE")
    found = {e.hsa_id: e for e in snap.entries}
    assert found["SE2321000131-E000000000901"].name == "Hud+Allergi"
    assert found["SE2321000131-P000000000901"].parent_hsa_id == "SE2321000131-E000000000901"


def test_a_value_that_is_not_base64_is_named_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"line 2: not base64 after '::'"):
        parse_ldif("dn: cn=a,o=VGR\ncn:: not*base64\n")
