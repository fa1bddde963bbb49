"""Configuration: reference variable names, `.env` parsing, embedded defaults, clear errors."""

import ipaddress

import pytest

from cloud.config import (SANDBOX_SHORTCODE, ConfigError, config_from_mapping, load_config,
                          parse_env_file)

SECRET = "s3cret-callback-path-123"


def test_embedded_defaults_need_no_account_at_all():
    cfg = config_from_mapping({})
    assert cfg.store == "sqlite" and cfg.embedded_daraja and cfg.auth_mode == "apikey"
    assert cfg.daraja_shortcode == SANDBOX_SHORTCODE and cfg.port == 3000
    assert cfg.frontend_url == "*" and cfg.callback_allowlist == ()
    assert len(cfg.callback_secret) >= 24  # random per start unless configured
    assert cfg.callback_url_for("127.0.0.1", 3000).endswith("/daraja/callback/"
                                                            + cfg.callback_secret)


def test_reference_names_configure_a_real_gateway_and_firebase():
    cfg = config_from_mapping({
        "FIREBASE_DATABASE_URL": "https://demo-meter-default-rtdb.firebaseio.com",
        "FIREBASE_SA_BASE64": "e30=", "DARAJA_CONSUMER_KEY": "ck", "DARAJA_CONSUMER_SECRET": "cs",
        "DARAJA_SHORTCODE": "600999", "DARAJA_PASSKEY": "pk", "PORT": "8080",
        "DARAJA_CALLBACK_URL": f"https://mita.example/daraja/callback/{SECRET}",
        "MITA_CALLBACK_SECRET": SECRET, "FRONTEND_URL": "https://dash.example",
        "MITA_CALLBACK_ALLOWLIST": "196.201.212.0/24, 196.201.213.0/24",
        "MITA_SETTLE_AFTER_S": "40", "MITA_MAX_AMOUNT_KES": "20000"})
    assert cfg.store == "firebase" and cfg.auth_mode == "firebase" and cfg.port == 8080
    assert cfg.daraja_base_url == "https://sandbox.safaricom.co.ke" and not cfg.embedded_daraja
    assert cfg.callback_url_for("x", 1) == f"https://mita.example/daraja/callback/{SECRET}"
    assert ipaddress.ip_address("196.201.213.9") in cfg.callback_allowlist[1]
    assert (cfg.settle_after_s, cfg.max_amount_kes) == (40.0, 20000)


@pytest.mark.parametrize("env, words", [
    ({"PORT": "http"}, "PORT"), ({"PORT": "70000"}, "PORT"),
    ({"MITA_STORE": "mongo"}, "MITA_STORE"), ({"MITA_STORE": "firebase"}, "FIREBASE_DATABASE_URL"),
    ({"DARAJA_CONSUMER_KEY": "ck"}, "DARAJA_CONSUMER_SECRET"),
    ({"DARAJA_BASE_URL": "https://api.safaricom.co.ke"}, "DARAJA_PASSKEY"),
    ({"MITA_CALLBACK_SECRET": "short"}, "16"),
    ({"MITA_CALLBACK_ALLOWLIST": "196.201.212.0/33"}, "CIDR"),
    ({"MITA_SETTLE_AFTER_S": "-1"}, "positive"), ({"MITA_SETTLE_AFTER_S": "soon"}, "seconds"),
    ({"MITA_MIN_AMOUNT_KES": "500", "MITA_MAX_AMOUNT_KES": "100"}, "MIN"),
    ({"MITA_MAX_AMOUNT_KES": "300000"}, "range"),
    ({"MITA_AUTH": "firebase"}, "MITA_STORE=firebase"), ({"MITA_AUTH": "oauth"}, "MITA_AUTH"),
])
def test_bad_settings_are_refused_with_the_variable_named(env, words):
    with pytest.raises(ConfigError, match=words):
        config_from_mapping(env)


def test_a_callback_url_must_carry_the_configured_secret():
    base = {"DARAJA_BASE_URL": "https://sandbox.safaricom.co.ke", "DARAJA_CONSUMER_KEY": "k",
            "DARAJA_CONSUMER_SECRET": "s", "DARAJA_SHORTCODE": "1", "DARAJA_PASSKEY": "p",
            "DARAJA_CALLBACK_URL": "https://mita.example/daraja/callback"}
    with pytest.raises(ConfigError, match="MITA_CALLBACK_SECRET"):
        config_from_mapping(base)
    with pytest.raises(ConfigError, match="carry"):
        config_from_mapping(dict(base, MITA_CALLBACK_SECRET=SECRET))


def test_env_file_parsing():
    text = """
# comment
export PORT=8081
DARAJA_SHORTCODE = 600999   # trailing comment
FRONTEND_URL="https://dash.example # not a comment"
EMPTY=
QUOTED='a b'
"""
    assert parse_env_file(text) == {"PORT": "8081", "DARAJA_SHORTCODE": "600999",
                                    "FRONTEND_URL": "https://dash.example # not a comment",
                                    "EMPTY": "", "QUOTED": "a b"}
    with pytest.raises(ConfigError, match="line 2"):
        parse_env_file("A=1\nthis is not a setting\n")


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=8081\nMITA_SQLITE_PATH=/tmp/from-file.db\n")
    cfg = load_config({"PORT": "9000"}, env_file=str(env_file))
    assert cfg.port == 9000 and cfg.sqlite_path == "/tmp/from-file.db"
    assert load_config({}, env_file=str(tmp_path / "missing")).port == 3000


def test_operator_commands_work_on_the_configured_store(tmp_path, monkeypatch, capsys):
    from cloud.__main__ import main
    monkeypatch.setenv("MITA_SQLITE_PATH", str(tmp_path / "ops.sqlite3"))
    env_file = str(tmp_path / "none.env")
    assert main(["--env-file", env_file, "create-user", "--name", "Amina", "--user-id", "u1",
                 "--phone", "0712 345 678"]) == 0
    assert "api_key: mk_" in capsys.readouterr().out
    assert main(["--env-file", env_file, "register-meter", "meter 1234-5678",
                 "--user-id", "u1"]) == 0
    out = capsys.readouterr().out
    assert "meter_no: METER12345678" in out and "device_key: dk_" in out
    assert main(["--env-file", env_file, "register-meter", "METER_12345678",
                 "--user-id", "u1"]) == 1
    assert "exists" in capsys.readouterr().err
    monkeypatch.setenv("PORT", "many")
    assert main(["--env-file", env_file, "create-user", "--name", "X"]) == 2
