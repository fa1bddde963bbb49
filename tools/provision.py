"""Write a meter's /config.json (meter id, WiFi, broker, key, token key), from arguments or from the
cloud's registration reply (POST /api/meters with an operator key returns the device key once).

    python tools/provision.py --meter MITA-0001 --ssid home --password pw \\
        --broker mqtt.example.com:8883 --tls --key dk_...            # no cloud call
    python tools/provision.py --meter MITA-0001 --ssid home --password pw \\
        --broker mqtt.example.com --cloud https://cloud.example.com --operator-key op_... \\
        --user-id u123                                              # registers the meter

Writes build/meters/<METER>/config.json (mode 0600: it holds the key); tools/deploy.py takes it.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METERS_DIR = os.path.join(ROOT, "build", "meters")


class ProvisionError(Exception):
    pass


def config_path(meter_id, meters_dir=METERS_DIR):
    return os.path.join(meters_dir, meter_id, "config.json")


def parse_broker(text):
    """"host" or "host:port" -> (host, port); the port defaults to 1883."""
    if not text:
        return "", 1883
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return text, 1883
    if not 0 < int(port) < 65536:
        raise ProvisionError("broker port out of range: %s" % port)
    return host, int(port)


def broker_password(meter_id, device_key):
    """The meter's broker password as the cloud derives it, where the cloud package is here."""
    try:
        from cloud.link.accounts import meter_broker_password
    except ImportError:
        return None
    return meter_broker_password(meter_id, device_key)


def token_config(meter_id, device_key):
    """The meter's OpenPAYGo token key, derived from its device key as the cloud derives it
    (cloud/tokens.py), where the cloud package is here; None otherwise."""
    try:
        from cloud.tokens import token_config as derive
    except ImportError:
        return None
    return derive(meter_id, device_key)


def register(cloud_url, operator_key, meter_id, user_id, timeout=15):
    """POST /api/meters; returns the reply (it carries device_key, shown only this once)."""
    body = json.dumps({"meter_no": meter_id, "user_id": user_id}).encode()
    req = urllib.request.Request(cloud_url.rstrip("/") + "/api/meters", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + operator_key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise ProvisionError("cloud refused the registration (%d): %s" % (exc.code, detail))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProvisionError("cloud registration failed: %s" % exc)
    if not isinstance(reply, dict) or not reply.get("device_key"):
        raise ProvisionError("the cloud's reply has no device_key: %r" % (reply,))
    return reply


def build_config(meter_id, ssid="", password="", broker="", tls=False, key="",
                 mqtt_user=None, mqtt_password=None, extra=None):
    """The meter's config.json as a dict: only what differs from the firmware's defaults."""
    if not meter_id or "/" in meter_id or "+" in meter_id or "#" in meter_id:
        raise ProvisionError("a meter id is needed, without / + or #: %r" % meter_id)
    host, port = parse_broker(broker)
    if mqtt_password is None and key:
        mqtt_password = broker_password(meter_id, key) or ""
    config = {
        "meter_id": meter_id,
        "wifi": {"ssid": ssid, "password": password},
        "mqtt": {"host": host, "port": port, "user": mqtt_user or meter_id,
                 "password": mqtt_password or "", "tls": bool(tls)},
        "key": key,
    }
    token = token_config(meter_id, key) if key else None
    if token is not None:
        config["token"] = token  # the keypad's tokens: secret like the key, never printed
    for name, value in (extra or {}).items():
        config[name] = value
    return config


def write_config(config, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meter", required=True, help="meter id (the account number customers pay to)")
    p.add_argument("--ssid", default="")
    p.add_argument("--password", default="", help="WiFi password")
    p.add_argument("--broker", default="", help="MQTT broker host[:port]")
    p.add_argument("--tls", action="store_true", help="MQTT over TLS")
    p.add_argument("--key", default="", help="the meter's device key (skips the cloud)")
    p.add_argument("--cloud", help="cloud base URL: register the meter there for its key")
    p.add_argument("--operator-key", default=os.environ.get("MITA_OPERATOR_KEY", ""),
                   help="operator API key (or $MITA_OPERATOR_KEY)")
    p.add_argument("--user-id", default="", help="the customer the meter belongs to")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="any other config key, e.g. --set initial_balance_cents=0")
    p.add_argument("--out", help="where to write (default build/meters/<METER>/config.json)")
    args = p.parse_args(argv)
    try:
        extra = {}
        for item in args.set:
            name, _, value = item.partition("=")
            try:
                extra[name] = json.loads(value)
            except ValueError:
                extra[name] = value
        key, user, mqtt_password = args.key, None, None
        if args.cloud and not key:
            if not args.operator_key:
                raise ProvisionError("--cloud needs --operator-key (or $MITA_OPERATOR_KEY)")
            reply = register(args.cloud, args.operator_key, args.meter, args.user_id)
            key = reply["device_key"]
            user, mqtt_password = reply.get("mqtt_username"), reply.get("mqtt_password")
        config = build_config(args.meter, args.ssid, args.password, args.broker, args.tls, key,
                              user, mqtt_password, extra)
        path = write_config(config, args.out or config_path(args.meter))
    except ProvisionError as exc:
        print("provision: %s" % exc, file=sys.stderr)
        return 2
    print(path)
    if not key:
        print("provision: no device key: the meter will not reach the cloud until it has one",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
