"""Small helpers the views share: who is asking, and the meter a path names."""

from cloud.callbacks import normalise_meter_no
from cloud.errors import BadRequest
from cloud.store.base import NotFound
from cloud.views.keys import STORE, USER_AUTH


async def principal(request):
    return await request.app[USER_AUTH].authenticate(request.headers.get("Authorization"))


async def meter_from_path(request):
    meter_no = normalise_meter_no(request.match_info["meterId"])
    meter = await request.app[STORE].get_meter(meter_no)
    if meter is None:
        raise NotFound(f"no meter {meter_no}")
    return meter


def query_int(request, name, default, low, high):
    text = request.query.get(name)
    if text is None or text == "":
        return default
    # the length first: int() of thousands of digits raises instead of answering
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def public_meter(meter):
    """Meter record as the API shows it: the device key never leaves the store."""
    return {k: v for k, v in meter.items() if k != "device_key"}
