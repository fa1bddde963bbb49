"""Phone normalisation: every way a Kenyan customer types a number, and junk that must not pass."""

import re

import pytest
from hypothesis import given, strategies as st

from cloud.phone import InvalidPhone, normalise_msisdn

DARAJA_FORM = re.compile(r"254[71][0-9]{8}")


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("0712345678", "254712345678"),
        ("0112345678", "254112345678"),
        ("+254712345678", "254712345678"),
        ("254712345678", "254712345678"),
        ("712345678", "254712345678"),
        ("112345678", "254112345678"),
        ("0712 345 678", "254712345678"),
        ("0712-345-678", "254712345678"),
        ("(0712) 345678", "254712345678"),
        ("+254 (712) 345-678", "254712345678"),
        ("  +254 712 345 678\t", "254712345678"),
        (254708374149, "254708374149"),
    ],
)
def test_accepted_forms_become_the_twelve_digit_daraja_form(typed, expected):
    assert normalise_msisdn(typed) == expected


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "   ",
        "0812345678",  # not a mobile range
        "071234567",  # one digit short
        "07123456789",  # one digit long
        "255712345678",  # Tanzania
        "+0712345678",
        "254 0712345678",  # trunk zero after the country code
        "2547123456a8",
        "07l2345678",  # letter l for digit 1
        "\u0660\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
        "\uff10\uff17\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # full-width digits
        "0712\n345678",
        "0" * 500,
        None,
        7.12345678e8,
        True,
        -254712345678,
        b"0712345678",
    ],
)
def test_junk_is_rejected_with_invalid_phone(junk):
    with pytest.raises(InvalidPhone):
        normalise_msisdn(junk)


def test_invalid_phone_is_a_value_error_with_a_helpful_message():
    with pytest.raises(ValueError) as raised:
        normalise_msisdn("0812 345 678")
    message = str(raised.value)
    assert "0812 345 678" in message
    assert "0712345678" in message  # shows what is expected


def test_very_long_input_is_not_echoed_in_full():
    with pytest.raises(InvalidPhone) as raised:
        normalise_msisdn("9" * 10_000)
    assert len(str(raised.value)) < 300


_subscriber = st.from_regex(r"[71][0-9]{8}", fullmatch=True)
_separator = st.sampled_from(["", " ", "-", "  ", " - "])


@st.composite
def typed_numbers(draw):
    """A valid subscriber number written in one of the customer forms, with separators."""
    subscriber = draw(_subscriber)
    prefix = draw(st.sampled_from(["0", "+254", "254", ""]))
    cuts = sorted(draw(st.lists(st.integers(1, 8), max_size=3, unique=True)))
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(subscriber[start:cut])
        start = cut
    pieces.append(subscriber[start:])
    body = "".join(piece + draw(_separator) for piece in pieces[:-1]) + pieces[-1]
    if draw(st.booleans()) and prefix:
        prefix = "(" + prefix + ")"
    return prefix + draw(_separator) + body, subscriber


@given(typed_numbers())
def test_valid_forms_round_trip(case):
    typed, subscriber = case
    normalised = normalise_msisdn(typed)
    assert normalised == "254" + subscriber
    assert normalise_msisdn(normalised) == normalised
    assert normalise_msisdn("0" + normalised[3:]) == normalised


@given(st.one_of(st.text(max_size=60), st.binary(max_size=20), st.integers(), st.floats(),
                 st.none()))
def test_random_junk_is_either_rejected_or_truly_valid(junk):
    try:
        result = normalise_msisdn(junk)
    except InvalidPhone:
        return
    assert DARAJA_FORM.fullmatch(result)
    digits = re.sub(r"[^0-9]", "", str(junk))
    assert digits.endswith(result[3:])


@given(st.text(alphabet="0123456789+-() ", max_size=20))
def test_digit_soup_never_crashes_and_only_passes_as_a_real_number(soup):
    try:
        result = normalise_msisdn(soup)
    except InvalidPhone:
        return
    assert DARAJA_FORM.fullmatch(result)
    assert re.sub(r"[^0-9]", "", soup).endswith(result[3:])
