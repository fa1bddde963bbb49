"""The meter domain the views call: registration (with the meter's broker login), what a
meter reports about itself over HTTP, its consumption and payments, customers, and the
tariff every meter bills by. Views never reach the store but through here or Payments."""

from cloud.auth import hash_key, new_secret
from cloud.callbacks import normalise_meter_no
from cloud.store.base import NotFound
from cloud.tariff import validate_tariff


def public_meter(meter):
    """Meter record as the API shows it: the device key never leaves the store."""
    return {k: v for k, v in meter.items() if k != "device_key"}


class Meters:
    def __init__(self, store, link):
        self.store = store
        self.link = link

    async def get(self, meter_no):
        """The stored meter a (user-typed) number names; NotFound if none."""
        canonical = normalise_meter_no(meter_no)
        meter = await self.store.get_meter(canonical)
        if meter is None:
            raise NotFound(f"no meter {canonical}")
        return meter

    async def register(self, meter_no, user_id):
        """A new meter for a customer. The reply is the only time its device key and broker
        login are shown: they go into the meter's config at provisioning."""
        device_key = new_secret("dk_")
        meter = await self.store.create_meter(normalise_meter_no(meter_no), user_id, device_key)
        broker = self.link.meter_registered(meter["meter_no"], device_key)
        return dict(public_meter(meter), device_key=device_key, **broker)

    async def rotate_key(self, meter_no):
        """A new device key for a registered meter, shown once with its new broker login, as
        at registration. Provision the meter with it and restart it: the link signs with the
        new key from the meter's next connection, and nothing pending is lost (recharges are
        signed when sent, not stored signed; docs/protocol.md "Rotating a key")."""
        meter = await self.get(meter_no)
        device_key = new_secret("dk_")
        await self.store.set_device_key(meter["meter_no"], device_key)
        broker = self.link.meter_registered(meter["meter_no"], device_key)
        return dict(public_meter(meter), device_key=device_key, **broker)

    async def for_user(self, user_id):
        return await self.store.list_meters(user_id)

    async def page(self, after, limit, prefix=None):
        """One page of the fleet, in meter_no order after the cursor `after`; with `prefix`
        only the meters whose (canonical) number starts with it."""
        found = await self.store.list_meters_page(after, limit, prefix)
        return [public_meter(m) for m in found]

    # -- what a meter reports itself (signed requests, checked by the view) ----------------
    async def report_balance(self, meter_no, balance_cents, now_ms):
        await self.store.update_meter_balance(meter_no, balance_cents, now_ms)

    async def report_status(self, meter_no, status, now_ms):
        await self.store.update_meter_status(meter_no, status, now_ms)

    # -- history --------------------------------------------------------------------------
    async def consumption(self, meter_no, date_from, date_to):
        return await self.store.get_consumption(meter_no, date_from, date_to)

    async def transactions_for_meter(self, meter_no, limit):
        return await self.store.list_transactions_for_meter(meter_no, limit)

    async def transactions_for_user(self, user_id, limit):
        return await self.store.list_transactions_for_user(user_id, limit)

    # -- customers and the tariff (operators) ---------------------------------------------
    async def create_user(self, user, with_api_key):
        """The stored user, and (apikey mode) its API key: shown once, only its hash kept."""
        created = await self.store.create_user(user)
        reply = dict(created)
        if with_api_key:
            api_key = new_secret("mk_")
            await self.store.set_user_api_key_hash(created["user_id"], hash_key(api_key))
            reply["api_key"] = api_key
        return reply

    async def get_tariff(self):
        tariff = await self.store.get_tariff()
        if tariff is None:
            raise NotFound("no tariff set yet")
        return tariff

    async def set_tariff(self, body):
        # The stored tariff is what meters receive (docs/protocol.md): validated by their rules.
        tariff = validate_tariff(body)
        return await self.store.set_tariff(tariff) or tariff
