"""Kenyan mobile numbers: whatever a customer types, turned into Daraja's 2547XXXXXXXX form."""

import re

# Separators people type inside a number; they carry no meaning and are dropped.
_SEPARATORS = re.compile(r"[ \t\-().]")
# Safaricom/Airtel/Telkom mobile ranges start with 7 or 1 after the country code. ASCII digits
# only: str.isdigit() would let Arabic-Indic or full-width digits through.
_FORMS = (
    re.compile(r"\+254([71][0-9]{8})"),
    re.compile(r"254([71][0-9]{8})"),
    re.compile(r"0([71][0-9]{8})"),
    re.compile(r"([71][0-9]{8})"),
)
_MAX_INPUT = 40
_EXPECTED = "expected a Kenyan mobile number such as 0712345678, +254712345678 or 254112345678"


class InvalidPhone(ValueError):
    """The text is not a Kenyan mobile number Daraja would accept."""


def normalise_msisdn(text) -> str:
    """Return the 12-digit 2547XXXXXXXX / 2541XXXXXXXX form of a typed phone number.

    Daraja callbacks send PhoneNumber as a JSON number, so a non-negative int is accepted too.
    """
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        text = str(text)
    if not isinstance(text, str):
        raise InvalidPhone("invalid phone number of type %s: %s" % (type(text).__name__, _EXPECTED))
    shown = text if len(text) <= _MAX_INPUT else text[:_MAX_INPUT] + "..."
    if len(text) > _MAX_INPUT:
        raise InvalidPhone("invalid phone number %r: too long; %s" % (shown, _EXPECTED))
    compact = _SEPARATORS.sub("", text.strip())
    for form in _FORMS:
        match = form.fullmatch(compact)
        if match:
            return "254" + match.group(1)
    raise InvalidPhone("invalid phone number %r: %s" % (shown, _EXPECTED))
