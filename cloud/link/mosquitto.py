"""mosquitto for the meter link: its config, ACL and password file (hashes in mosquitto's own
PBKDF2-SHA512 `$7$` format), kept from the store and reloaded with SIGHUP.

    python -m cloud.link.mosquitto --out DIR [--port 1883] [--bind 127.0.0.1]

writes DIR/mosquitto.conf, DIR/acl and DIR/passwords (every registered meter plus the bridge)
and prints the MITA_MQTT_URL and MITA_MOSQUITTO_* settings for `python -m cloud serve`."""

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import os
import secrets
import signal
import sys
import tempfile

from cloud.link.accounts import (BRIDGE_USERNAME, METER_PUBLISHES, METER_SUBSCRIBES,
                                 bridge_logins, is_bridge_login, meter_broker_password)

_ITERATIONS = 101  # mosquitto_passwd's own default
_SALT_BYTES = 12


class MosquittoError(Exception):
    """A mosquitto file could not be written or the broker could not be reloaded."""


def hash_password(password, salt=None, iterations=_ITERATIONS):
    """A password_file hash as mosquitto_passwd writes it: $7$iterations$salt$pbkdf2."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode(),
                            base64.b64encode(digest).decode())


def check_password(line_hash, password):
    """True if password matches a $7$ hash (the tests check our files with it)."""
    try:
        _, kind, iterations, salt, digest = line_hash.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    again = hash_password(password, base64.b64decode(salt), int(iterations))
    return secrets.compare_digest(again.rsplit("$", 1)[1], digest)


def _check_username(user):
    if not user or ":" in user or any(c.isspace() for c in user):
        raise MosquittoError("user name %r cannot go into a password file" % (user,))
    return user


def read_password_file(path):
    """{user: hash} from a password file (missing file: empty)."""
    accounts = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                user, sep, hashed = line.rstrip("\n").partition(":")
                if sep and user:
                    accounts[user] = hashed
    except FileNotFoundError:
        pass
    return accounts


def write_password_file(path, hashes):
    """Replace the file in one rename, so mosquitto never reads half of it."""
    text = "".join("%s:%s\n" % (_check_username(u), h) for u, h in sorted(hashes.items()))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".passwords-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # Salted hashes only; mosquitto drops root for its own user, which must read it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def reload(pid_file):
    """SIGHUP the mosquitto whose pid is in pid_file: it re-reads password and ACL files.
    False when there is no pid file or no such process (mosquitto reads them at start)."""
    if not pid_file:
        return False
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    return True


@contextlib.contextmanager
def _locked(path):
    """Several cloud instances on one machine keep the same file: one change at a time, each
    reading what the last one wrote."""
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def add_password(path, user, password, pid_file=""):
    """Add or replace one account and reload mosquitto."""
    with _locked(path):
        hashes = read_password_file(path)
        hashes[_check_username(user)] = hash_password(password)
        write_password_file(path, hashes)
    reload(pid_file)


async def sync_password_file(store, path, extra_accounts, pid_file=""):
    """Rewrite the file from the store: every meter, plus extra_accounts {user: password}.
    Hashes of unchanged passwords are kept, so a sync that changes nothing changes no byte.
    Other bridge logins' lines are kept as they are: each instance knows only its own
    password, and an instance starting must not lock the others out."""
    wanted = dict(extra_accounts)
    for meter in await store.list_meters():
        meter_no = meter["meter_no"]
        key = await store.get_device_key(meter_no)
        if key:
            wanted[meter_no] = meter_broker_password(meter_no, key)
    with _locked(path):
        old = read_password_file(path)
        hashes = {user: old[user] if user in old and check_password(old[user], password)
                  else hash_password(password) for user, password in wanted.items()}
        hashes.update({user: hashed for user, hashed in old.items()
                       if is_bridge_login(user) and user not in wanted})
        changed = hashes != old
        if changed:
            write_password_file(path, hashes)
    if changed:
        reload(pid_file)
    return len(hashes)


def acl_text(bridge_usernames=(BRIDGE_USERNAME,)):
    """The protocol's access rule, as cloud/link/accounts.py states it: each bridge login
    (one per cloud instance) everywhere under meters/; a meter writes only its own reports and
    reads only its own commands. mosquitto checks a `$share/<group>/` subscription against
    the filter after the group, so the bridges' rule covers their shared subscriptions."""
    if isinstance(bridge_usernames, str):
        bridge_usernames = [bridge_usernames]
    lines = []
    for user in bridge_usernames:
        lines += ["user %s" % _check_username(user), "topic readwrite meters/#", ""]
    lines += ["pattern write meters/%%u/%s" % kind for kind in METER_PUBLISHES]
    lines += ["pattern read meters/%%u/%s" % kind for kind in METER_SUBSCRIBES]
    return "\n".join(lines) + "\n"


def config_text(port, password_file, acl_file, bind="127.0.0.1", persistence_file="",
                pid_file=""):
    lines = ["listener %d %s" % (port, bind), "allow_anonymous false",
             # Client ids bound to logins: no login can take over another's session.
             "use_username_as_clientid true",
             "password_file %s" % password_file, "acl_file %s" % acl_file,
             # protocol.md: meters drop incoming packets over 4096 bytes; keep the cloud's
             # side bounded too (history and statuses are far smaller).
             "max_packet_size 16384", "max_queued_messages 1000"]
    if persistence_file:
        # The folder must be writable by the user mosquitto drops to (see operations.md).
        folder, name = os.path.split(os.path.abspath(persistence_file))
        lines += ["persistence true", "persistence_location %s/" % folder,
                  "persistence_file %s" % name]
    else:
        lines.append("persistence false")
    if pid_file:
        lines.append("pid_file %s" % pid_file)
    return "\n".join(lines) + "\n"


def write_config(folder, port=1883, bind="127.0.0.1", bridge_username=BRIDGE_USERNAME,
                 persistence=True):
    """bridge_username: one login, or a list of them (one per cloud instance)."""
    """mosquitto.conf and acl in folder (the password file is filled by sync_password_file).
    Returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(os.path.abspath(folder), name)
             for name in ("mosquitto.conf", "acl", "passwords", "mosquitto.db")}
    with open(paths["acl"], "w", encoding="utf-8") as f:
        f.write(acl_text(bridge_username))
    with open(paths["mosquitto.conf"], "w", encoding="utf-8") as f:
        f.write(config_text(port, paths["passwords"], paths["acl"], bind,
                            paths["mosquitto.db"] if persistence else ""))
    for path in (paths["acl"], paths["mosquitto.conf"]):
        os.chmod(path, 0o644)
    if not os.path.exists(paths["passwords"]):
        write_password_file(paths["passwords"], {})
    return paths


async def _generate(args):
    from cloud.store import open_store
    from cloud.config import load_config
    config = load_config(env_file=args.env_file)
    logins = bridge_logins(args.instances)
    paths = write_config(args.out, args.port, args.bind, logins)
    passwords = {user: (args.bridge_password if len(logins) == 1 else "")
                 or secrets.token_urlsafe(24) for user in logins}
    store = await open_store(config)
    try:
        count = await sync_password_file(store, paths["passwords"], passwords)
    finally:
        await store.close()
    print("wrote %s (%d accounts)" % (paths["mosquitto.conf"], count))
    print("run:   mosquitto -c %s" % paths["mosquitto.conf"])
    for user in logins:
        print("then:  MITA_MQTT_URL=mqtt://%s:%s@127.0.0.1:%d" % (user, passwords[user],
                                                                args.port))
    if len(logins) > 1:
        print("       (one URL per instance) MITA_MQTT_SHARE_GROUP=mita on every instance")
    print("       MITA_MOSQUITTO_PASSWORD_FILE=%s" % paths["passwords"])
    print("       MITA_MOSQUITTO_PID_FILE=<mosquitto's pid file, for reloads on registration>")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cloud.link.mosquitto", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the files")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--bridge-password", help="default: a new random one")
    parser.add_argument("--instances", type=int, default=1,
                        help="cloud instances on this broker: a bridge login for each")
    parser.add_argument("--env-file", default=".env")
    asyncio.run(_generate(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
