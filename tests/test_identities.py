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


# -- VGR reservnummer ---------------------------------------------------------------------------------

from datetime import date  # noqa: E402

from rehearsal.identities import (  # noqa: E402
    RESERVNUMMER_SERIALS,
    check_reservnummer,
    is_reservnummer,
    make_reservnummer,
    reservnummer_sex,
)


@pytest.mark.parametrize(
    "value,sex",
    [("19810829M071", "male"), ("19810829K067", "female"), ("20240101X805", "unknown")],
)
def test_valid_reservnummer(value, sex):
    assert check_reservnummer(value) == value
    assert reservnummer_sex(value) == sex
    assert is_reservnummer(value)


@pytest.mark.parametrize(
    "value,why",
    [
        ("19810829M072", "check digit"),
        ("19810829A071", "K/M/X"),
        ("19810832M071", "no valid date"),
        ("19810829M051", "outside 06–89"),
        ("19810829M901", "outside 06–89"),
        ("198108291071", "K/M/X"),
        ("19121212-1212", "K/M/X"),
    ],
)
def test_invalid_reservnummer(value, why):
    with pytest.raises(IdentityError, match=why):
        check_reservnummer(value)
    assert not is_reservnummer(value)


def test_letters_count_as_their_digit_in_the_luhn_sum():
    from rehearsal.identities import luhn_digit

    for letter, digit in (("K", 5), ("M", 7), ("X", 8)):
        number = f"19810829{letter}07{luhn_digit(f'810829{digit}07')}"
        assert check_reservnummer(number) == number


@pytest.mark.parametrize("sex", ["male", "female", "unknown"])
def test_make_reservnummer_issues_free_valid_numbers_until_the_day_is_full(sex):
    day, issued = date(1975, 3, 14), []
    for _ in RESERVNUMMER_SERIALS[sex]:
        number = make_reservnummer(day, sex, issued)
        assert check_reservnummer(number) and number.startswith("19750314") and number not in issued
        assert reservnummer_sex(number) == sex
        issued.append(number)
    with pytest.raises(IdentityError, match="already issued"):
        make_reservnummer(day, sex, issued)


def test_make_reservnummer_refuses_what_it_cannot_make():
    with pytest.raises(IdentityError, match="sex must be"):
        make_reservnummer(date(2000, 1, 1), "woman")
    with pytest.raises(IdentityError, match="K, M or X"):
        make_reservnummer(date(2000, 1, 1), "male", letter="Q")
