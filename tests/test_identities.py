import pytest

from rehearsal.identities import IdentityError, check_hsa_id, check_personnummer, is_samordningsnummer


@pytest.mark.parametrize("value", ["19121212-1212", "19800101-0019", "20100101-0113", "19121212+1212"])
def test_valid_personnummer(value):
    assert check_personnummer(value) == value


@pytest.mark.parametrize(
    "value,why",
    [("19121212-1213", "check digit"), ("19121312-1212", "date"), ("191212121212", "YYYYMMDD-NNNC")],
)
def test_invalid_personnummer(value, why):
    with pytest.raises(IdentityError, match=why):
        check_personnummer(value)


def test_samordningsnummer_is_day_plus_60():
    from rehearsal.identities import luhn_digit

    number = f"19800161-001{luhn_digit('800161001')}"
    assert check_personnummer(number) and is_samordningsnummer(number)


@pytest.mark.parametrize("value", ["SE2321000131-E000000000101", "SE2321000131-abc9"])
def test_valid_hsa_id(value):
    assert check_hsa_id(value) == value


@pytest.mark.parametrize(
    "value", ["SE2321000131-Ö1", "SE232100013-E1", "SE2321000131-" + "A" * 20, "se2321000131-E1"]
)
def test_invalid_hsa_id(value):
    with pytest.raises(IdentityError):
        check_hsa_id(value)
