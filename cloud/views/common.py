"""Small helpers the views share: who is asking, and the meter a path names."""

from cloud.errors import BadRequest
from cloud.keys import ABUSE, METERS, USER_AUTH
from cloud.meters import public_meter

__all__ = ["principal", "meter_from_path", "query_int", "public_meter"]


async def principal(request):
    """Who asks; a client that keeps presenting wrong keys or tokens is locked out (429)."""
    header = request.headers.get("Authorization")

    def attempt():
        return request.app[USER_AUTH].authenticate(header)
    if header is None:  # asked without credentials: a plain 401, no guess to count
        return await attempt()
    return await request.app[ABUSE].authenticate(request.remote, attempt)


async def meter_from_path(request):
    return await request.app[METERS].get(request.match_info["meterId"])


def query_int(request, name, default, low, high):
    text = request.query.get(name)
    if text is None or text == "":
        return default
    # the length first: int() of thousands of digits raises instead of answering
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)
