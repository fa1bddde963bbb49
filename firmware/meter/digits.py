# Is a str made of ASCII digits only? str.isdigit() is Unicode-wide on CPython ("\u00b2"
# passes it, then int() raises ValueError past the caller's own error: found by fuzzing), and a
# loop over a str's characters interns each one as a qstr on MicroPython; the bytes are checked.


def ascii_digits(text):
    raw = text.encode()
    if not raw:
        return False
    for b in raw:
        if b < 48 or b > 57:
            return False
    return True
