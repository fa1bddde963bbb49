"""Command line: `python -m cloud serve [--port N]`, operator commands that work on the
configured store directly (create-user, register-meter), and register-c2b for Daraja."""

import argparse
import asyncio
import logging
import sys


from cloud.app import create_app
from cloud.serving import serve_forever
from cloud.auth import new_secret
from cloud.config import ConfigError, load_config
from cloud.keys import DARAJA
from cloud.link.broker import BrokerStartError
from cloud.link.service import Link
from cloud.link.settings import BrokerConfigError
from cloud.meters import Meters
from cloud.phone import normalise_msisdn
from cloud.store import open_store
from cloud.store.base import StoreError

# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """The message, then every structured field passed as `extra=` as key=value."""

    def format(self, record):
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        return line


# Libraries whose INFO lines are internal chatter (amqtt's state machine logs every
# transition of every session): an operator sees their warnings only.
_QUIET_LOGGERS = ("transitions",)


def setup_logging(level="INFO"):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _register_own_c2b_urls(config):
    """Embedded mode: point the stand-in's paybill at ourselves so C2B simulate just works."""
    base = f"http://127.0.0.1:{config.port}"

    async def on_startup(app):
        try:
            await app[DARAJA].register_c2b_urls(
                f"{base}/daraja/c2b/confirmation/{config.callback_secret}",
                f"{base}/daraja/c2b/validation/{config.callback_secret}")
        except Exception as e:  # a demo convenience; the service works without it
            logging.getLogger("mita").warning("c2b register failed: %s", e)
    return on_startup


def serve(config):
    if config.auth_mode == "apikey" and not config.operator_key:
        # Bootstrap: without an operator nobody could create the first customer.
        config.operator_key = new_secret("op_")
        print(f"operator API key (this run only): {config.operator_key}", flush=True)
    app = create_app(config)  # the MQTT broker (in-process unless MITA_MQTT_URL) and bridge too
    if config.embedded_daraja:
        app.on_startup.append(_register_own_c2b_urls(config))
    logging.getLogger("mita").info("serving", extra={
        "port": config.port, "store": config.store,
        "daraja": config.daraja_base_url or "embedded stand-in"})
    print(f"dashboard: http://127.0.0.1:{config.port}/", flush=True)
    serve_forever(app, config)


async def _with_meters(config, job):
    """Run job(meters) on the configured store: the operator commands use the same service
    as the API, without starting the link (mosquitto's password file is still kept)."""
    store = await open_store(config)
    try:
        return await job(Meters(store, Link(config.link, store)))
    finally:
        await store.close()


async def create_user(config, name, role, user_id, phone):
    user = {"user_id": user_id, "name": name, "role": role,
            "phone_number": normalise_msisdn(phone) if phone else None}
    reply = await _with_meters(config, lambda meters: meters.create_user(
        user, with_api_key=config.auth_mode == "apikey"))
    print(f"user_id: {reply['user_id']}")
    if "api_key" in reply:
        print(f"api_key: {reply['api_key']}   (shown once; only its hash is stored)")


async def register_meter(config, meter_no, user_id):
    meter = await _with_meters(config, lambda meters: meters.register(meter_no, user_id))
    print(f"meter_no: {meter['meter_no']}")
    print(f"device_key: {meter['device_key']}   (shown once; put it in the meter's config)")
    print(f"mqtt_password: {meter['mqtt_password']}   (config['mqtt']['password'])")


async def rotate_key(config, meter_no):
    meter = await _with_meters(config, lambda meters: meters.rotate_key(meter_no))
    print(f"meter_no: {meter['meter_no']}")
    print(f"device_key: {meter['device_key']}   (shown once; provision the meter with it)")
    print(f"mqtt_password: {meter['mqtt_password']}   (config['mqtt']['password'])")


def c2b_urls(config, public_url):
    """(confirmation, validation) URLs under the public base URL, each carrying the secret."""
    base = public_url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValueError("the public URL must start with https:// (or http:// for tests)")
    return (f"{base}/daraja/c2b/confirmation/{config.callback_secret}",
            f"{base}/daraja/c2b/validation/{config.callback_secret}")


async def register_c2b(config, public_url, response_type="Completed"):
    """Tell Daraja where paybill payments are announced (run once per shortcode/host)."""
    import aiohttp

    from cloud.daraja import DarajaClient, DarajaError
    if config.embedded_daraja:
        raise ValueError("register-c2b needs a real gateway (DARAJA_BASE_URL / credentials); "
                         "`serve` registers itself with the embedded stand-in")
    confirmation, validation = c2b_urls(config, public_url)
    async with aiohttp.ClientSession() as session:
        client = DarajaClient(session, config.daraja_base_url, config.daraja_consumer_key,
                              config.daraja_consumer_secret, config.daraja_shortcode,
                              config.daraja_passkey, config.daraja_callback_url)
        try:
            reply = await client.register_c2b_urls(confirmation, validation, response_type)
        except DarajaError as e:
            raise ValueError(f"Daraja refused the registration: {e}") from None
    # the secret stays out of the terminal: the URLs are shown with it cut out
    print(f"registered {confirmation.replace(config.callback_secret, '<secret>')}")
    print(f"registered {validation.replace(config.callback_secret, '<secret>')}")
    return reply


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m cloud", description=__doc__)
    parser.add_argument("--env-file", default=".env")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the HTTP service")
    serve_cmd.add_argument("--port", type=int)
    user_cmd = commands.add_parser("create-user", help="create a customer or operator")
    user_cmd.add_argument("--name", required=True)
    user_cmd.add_argument("--role", choices=("customer", "operator"), default="customer")
    user_cmd.add_argument("--user-id", help="e.g. the Firebase uid")
    user_cmd.add_argument("--phone")
    meter_cmd = commands.add_parser("register-meter", help="register a meter to a user")
    meter_cmd.add_argument("meter_no")
    meter_cmd.add_argument("--user-id", required=True)
    key_cmd = commands.add_parser("rotate-key", help="give a meter a new device key")
    key_cmd.add_argument("meter_no")
    c2b_cmd = commands.add_parser("register-c2b",
                                  help="register the paybill confirmation/validation URLs")
    c2b_cmd.add_argument("public_url", help="this service's public base URL, https://...")
    c2b_cmd.add_argument("--response-type", choices=("Completed", "Cancelled"),
                         default="Completed",
                         help="what M-Pesa does when validation does not answer")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        config = load_config(env_file=args.env_file)
    except (ConfigError, BrokerConfigError) as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if args.port is not None:
            config.port = args.port
        try:
            serve(config)
        except BrokerStartError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    try:
        if args.command == "create-user":
            asyncio.run(create_user(config, args.name, args.role, args.user_id, args.phone))
        elif args.command == "register-meter":
            asyncio.run(register_meter(config, args.meter_no, args.user_id))
        elif args.command == "rotate-key":
            asyncio.run(rotate_key(config, args.meter_no))
        elif args.command == "register-c2b":
            asyncio.run(register_c2b(config, args.public_url, args.response_type))
    except (StoreError, ValueError) as e:  # Conflict, NotFound, bad meter number or phone
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
