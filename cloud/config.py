"""Service configuration from the environment and an optional `.env` file (reference names kept)."""

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field

from cloud.link.settings import LinkSettings, link_settings

# Safaricom's public sandbox shortcode and passkey: embedded mode needs no account at all.
SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"


class ConfigError(ValueError):
    """A setting is missing, malformed or contradicts another one."""


@dataclass
class Config:
    port: int = 3000
    frontend_url: str = "*"
    store: str = "sqlite"
    sqlite_path: str = "var/mita.sqlite3"  # var/ is git-ignored: `make cloud` leaves no file behind
    firebase_database_url: str = ""
    firebase_sa_base64: str = ""
    google_application_credentials: str = ""
    daraja_base_url: str = ""  # empty: start the local stand-in in-process
    daraja_consumer_key: str = "embedded-key"
    daraja_consumer_secret: str = "embedded-secret"
    daraja_shortcode: str = SANDBOX_SHORTCODE
    daraja_passkey: str = SANDBOX_PASSKEY
    daraja_callback_url: str = ""  # empty: this server's own /daraja/callback/<secret>
    callback_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    callback_allowlist: tuple = ()  # ip_network objects; empty: any source
    settle_after_s: float = 45.0
    settle_every_s: float = 15.0
    settle_give_up_s: float = 600.0
    operator_key: str = ""
    min_amount_kes: int = 1
    max_amount_kes: int = 250_000
    max_body_bytes: int = 64 * 1024
    # A connection that has not sent a whole request head within this many seconds (at
    # connect, and again after each response) is closed: slow-header clients hold no sockets.
    header_timeout_s: float = 15.0
    # STK push limits {"phone"|"meter"|"customer"|"operator": (pushes, per seconds)} over
    # cloud/push_guard.py's defaults; MITA_PUSH_LIMITS="phone=3/600,operator=30/60"
    push_limits: dict = field(default_factory=dict)
    meter_replay_window_s: int = 300
    # Soak diagnostics (cloud/memtrace.py): a file for tracemalloc reports on SIGUSR1; off.
    tracemalloc_path: str = ""
    auth_mode: str = "apikey"  # "apikey" (embedded) or "firebase" (ID tokens)
    # What the dashboard's Firebase JS SDK is given in Firebase mode (all public values: a
    # web API key names the project, it grants nothing), and the Auth emulator's host:port,
    # which firebase-admin reads from the same FIREBASE_AUTH_EMULATOR_HOST.
    firebase_project_id: str = ""
    firebase_web_api_key: str = ""
    firebase_auth_domain: str = ""
    firebase_auth_emulator_host: str = ""
    # The meter link. From the environment it is on unless MITA_MQTT=off; a Config built in
    # code (tests, benchmarks) has none unless given one.
    link: LinkSettings = field(default_factory=lambda: LinkSettings(enabled=False))

    @property
    def embedded_daraja(self):
        return not self.daraja_base_url

    def callback_url_for(self, host, port):
        """The STK CallBackURL: the configured one, or this server's own with the secret."""
        if self.daraja_callback_url:
            return self.daraja_callback_url
        return f"http://{host}:{port}/daraja/callback/{self.callback_secret}"


def parse_env_file(text):
    """KEY=VALUE lines; '#' comments, optional `export `, single or double quotes stripped."""
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f".env line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def _int(env, name, default, low=None, high=None):
    text = env.get(name, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name}={value} is out of range [{low}, {high}]")
    return value


def _seconds(env, name, default):
    text = env.get(name, "")
    if text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive")
    return value


# The ranges Safaricom's callbacks come from, as the SDKs list them
# (/work/shared/reference/daraja.md); `MITA_CALLBACK_ALLOWLIST=safaricom` names them.
SAFARICOM_CALLBACK_NETS = ("196.201.212.0/24", "196.201.213.0/24", "196.201.214.0/24")


def _allowlist(text):
    nets = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if part.lower() == "safaricom":
            nets.extend(ipaddress.ip_network(net) for net in SAFARICOM_CALLBACK_NETS)
        elif part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ConfigError(f"MITA_CALLBACK_ALLOWLIST: bad CIDR {part!r}") from None
    return tuple(nets)


def load_config(environ=None, env_file=".env"):
    """Settings from `env_file` overlaid by the process environment (the environment wins)."""
    env = {}
    if env_file and os.path.exists(env_file):
        with open(env_file, encoding="utf-8") as f:
            env.update(parse_env_file(f.read()))
    env.update(os.environ if environ is None else environ)
    return config_from_mapping(env)


def _firebase_web(env, cfg):
    cfg.firebase_project_id = env.get("FIREBASE_PROJECT_ID", "") or env.get("GOOGLE_CLOUD_PROJECT", "")
    cfg.firebase_web_api_key = env.get("FIREBASE_WEB_API_KEY", "")
    cfg.firebase_auth_domain = env.get("FIREBASE_AUTH_DOMAIN", "") or (
        cfg.firebase_project_id and cfg.firebase_project_id + ".firebaseapp.com")
    host = env.get("FIREBASE_AUTH_EMULATOR_HOST", "")
    if host and not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", host):
        raise ConfigError("FIREBASE_AUTH_EMULATOR_HOST must be host:port")
    cfg.firebase_auth_emulator_host = host


def config_from_mapping(env):
    cfg = Config()
    cfg.port = _int(env, "PORT", cfg.port, 0, 65535)
    cfg.frontend_url = env.get("FRONTEND_URL", "") or "*"
    cfg.firebase_database_url = env.get("FIREBASE_DATABASE_URL", "")
    cfg.firebase_sa_base64 = env.get("FIREBASE_SA_BASE64", "")
    cfg.google_application_credentials = env.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    cfg.store = env.get("MITA_STORE", "") or ("firebase" if cfg.firebase_database_url else "sqlite")
    if cfg.store not in ("sqlite", "firebase"):
        raise ConfigError(f"MITA_STORE must be sqlite or firebase, got {cfg.store!r}")
    if cfg.store == "firebase" and not cfg.firebase_database_url:
        raise ConfigError("MITA_STORE=firebase needs FIREBASE_DATABASE_URL")
    cfg.sqlite_path = env.get("MITA_SQLITE_PATH", "") or cfg.sqlite_path
    cfg.auth_mode = env.get("MITA_AUTH", "") or ("firebase" if cfg.store == "firebase" else "apikey")
    if cfg.auth_mode not in ("apikey", "firebase"):
        raise ConfigError(f"MITA_AUTH must be apikey or firebase, got {cfg.auth_mode!r}")
    if cfg.auth_mode == "firebase" and cfg.store != "firebase":
        # ID tokens are checked by the firebase-admin app the Firebase store initialises.
        raise ConfigError("MITA_AUTH=firebase needs MITA_STORE=firebase")
    _firebase_web(env, cfg)
    _daraja(env, cfg)
    cfg.link = link_settings(env)
    secret = env.get("MITA_CALLBACK_SECRET", "")
    if secret:
        if len(secret) < 16 or not all(c.isalnum() or c in "-_" for c in secret):
            raise ConfigError("MITA_CALLBACK_SECRET: at least 16 characters of [A-Za-z0-9_-]")
        cfg.callback_secret = secret
    cfg.callback_allowlist = _allowlist(env.get("MITA_CALLBACK_ALLOWLIST", ""))
    cfg.settle_after_s = _seconds(env, "MITA_SETTLE_AFTER_S", cfg.settle_after_s)
    cfg.settle_every_s = _seconds(env, "MITA_SETTLE_EVERY_S", cfg.settle_every_s)
    cfg.settle_give_up_s = _seconds(env, "MITA_SETTLE_GIVE_UP_S", cfg.settle_give_up_s)
    cfg.operator_key = env.get("MITA_OPERATOR_KEY", "")
    cfg.min_amount_kes = _int(env, "MITA_MIN_AMOUNT_KES", cfg.min_amount_kes, 1, 250_000)
    cfg.max_amount_kes = _int(env, "MITA_MAX_AMOUNT_KES", cfg.max_amount_kes, 1, 250_000)
    if cfg.min_amount_kes > cfg.max_amount_kes:
        raise ConfigError("MITA_MIN_AMOUNT_KES is above MITA_MAX_AMOUNT_KES")
    cfg.max_body_bytes = _int(env, "MITA_MAX_BODY_BYTES", cfg.max_body_bytes, 1024, 16 << 20)
    cfg.header_timeout_s = _seconds(env, "MITA_HEADER_TIMEOUT_S", cfg.header_timeout_s)
    cfg.push_limits = _push_limits(env.get("MITA_PUSH_LIMITS", ""))
    cfg.tracemalloc_path = env.get("MITA_TRACEMALLOC", "")
    return cfg


_PUSH_LIMIT = re.compile(r"(phone|meter|customer|operator)=([1-9][0-9]{0,5})/([1-9][0-9]{0,6})")


def _push_limits(text):
    limits = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _PUSH_LIMIT.fullmatch(part)
        if not match:
            raise ConfigError(f"MITA_PUSH_LIMITS: expected phone|meter|customer|operator="
                              f"PUSHES/SECONDS, got {part!r}")
        limits[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return limits


SANDBOX_BASE_URL = "https://sandbox.safaricom.co.ke"


def _daraja(env, cfg):
    cfg.daraja_base_url = env.get("DARAJA_BASE_URL", "").rstrip("/")
    key, secret = env.get("DARAJA_CONSUMER_KEY", ""), env.get("DARAJA_CONSUMER_SECRET", "")
    if (key or secret) and not cfg.daraja_base_url:
        cfg.daraja_base_url = SANDBOX_BASE_URL
    if cfg.daraja_base_url:
        # A real gateway with the embedded placeholder credentials would only ever answer 401.
        missing = [n for n in ("DARAJA_CONSUMER_KEY", "DARAJA_CONSUMER_SECRET", "DARAJA_PASSKEY",
                               "DARAJA_SHORTCODE", "DARAJA_CALLBACK_URL") if not env.get(n)]
        if missing:
            raise ConfigError("a real Daraja gateway also needs " + ", ".join(missing))
    cfg.daraja_consumer_key = key or cfg.daraja_consumer_key
    cfg.daraja_consumer_secret = secret or cfg.daraja_consumer_secret
    cfg.daraja_shortcode = env.get("DARAJA_SHORTCODE", "") or cfg.daraja_shortcode
    cfg.daraja_passkey = env.get("DARAJA_PASSKEY", "") or cfg.daraja_passkey
    cfg.daraja_callback_url = env.get("DARAJA_CALLBACK_URL", "")
    if cfg.daraja_callback_url:
        # Daraja does not sign callbacks: the secret in the URL is the only proof of origin.
        if not env.get("MITA_CALLBACK_SECRET"):
            raise ConfigError("DARAJA_CALLBACK_URL needs MITA_CALLBACK_SECRET (and must carry it)")
        if env["MITA_CALLBACK_SECRET"] not in cfg.daraja_callback_url:
            raise ConfigError("DARAJA_CALLBACK_URL does not carry MITA_CALLBACK_SECRET")
