"""load_config: file + environment precedence, error messages, list parsing, Secret handling."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import msgspec
import pytest

from tradebus.shared.config import ConfigError, Secret, load_config, load_secrets_file
from tradebus.shared.logs import redact, setup_logging


class Paper(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    seed: int = 1
    speed: float = 1.0
    fill_ratio: float = 1.0


class Venue(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    api_key: Secret | None = None


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    nats_url: str = "nats://127.0.0.1:4222"
    http_port: int = 0
    debug: bool = False
    symbols: list[str] = []
    ports: list[int] = []
    venues_enabled: list[str] | None = None
    limits: dict[str, int] = {}
    paper: Paper = msgspec.field(default_factory=Paper)
    venue: Venue | None = None


class Required(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    nats_url: str
    paper: Paper


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradebus.toml"
    path.write_text(text)
    return path


# --- sources and precedence ----------------------------------------------------------------


def test_defaults_when_no_file_and_no_env() -> None:
    assert load_config(Settings, env={}) == Settings()


def test_file_with_nested_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        nats_url = "nats://bus:4222"
        symbols = ["BTC-USD", "ETH-USD"]
        [paper]
        seed = 42
        [venue]
        name = "paper"
        """,
    )
    settings = load_config(Settings, path=path, env={})
    assert settings.nats_url == "nats://bus:4222"
    assert settings.symbols == ["BTC-USD", "ETH-USD"]
    assert settings.paper == Paper(seed=42)
    assert settings.venue == Venue(name="paper")


def test_environment_overrides_file_field_by_field(tmp_path: Path) -> None:
    path = write(tmp_path, 'nats_url = "nats://file:4222"\nhttp_port = 8000\n[paper]\nseed = 42\nspeed = 2.0\n')
    env = {"TRADEBUS_NATS_URL": "nats://env:4222", "TRADEBUS_PAPER__SEED": "7", "UNRELATED": "x"}
    settings = load_config(Settings, path=path, env=env)
    assert settings.nats_url == "nats://env:4222"
    assert settings.http_port == 8000  # from the file
    assert settings.paper == Paper(seed=7, speed=2.0)  # only seed overridden


def test_env_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBUS_HTTP_PORT", "9100")
    assert load_config(Settings).http_port == 9100


def test_environment_strings_are_converted() -> None:
    env = {"TRADEBUS_HTTP_PORT": "4222", "TRADEBUS_DEBUG": "true", "TRADEBUS_PAPER__SPEED": "2.5"}
    settings = load_config(Settings, env=env)
    assert (settings.http_port, settings.debug, settings.paper.speed) == (4222, True, 2.5)


def test_environment_can_create_an_optional_section() -> None:
    settings = load_config(Settings, env={"TRADEBUS_VENUE__NAME": "binance"})
    assert settings.venue == Venue(name="binance")


def test_reserved_variables_are_not_settings() -> None:
    env = {"TRADEBUS_CONFIG": "/etc/tradebus.toml", "TRADEBUS_SECRETS_FILE": "/run/secrets/env"}
    assert load_config(Settings, env=env) == Settings()


def test_custom_prefix() -> None:
    env = {"RISK_HTTP_PORT": "1", "TRADEBUS_HTTP_PORT": "2", "RISK_CONFIG": "ignored.toml"}
    assert load_config(Settings, env=env, prefix="RISK_").http_port == 1


# --- lists and dicts from the environment ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["BTC-USD", "ETH-USD"]', ["BTC-USD", "ETH-USD"]),
        ("BTC-USD,ETH-USD", ["BTC-USD", "ETH-USD"]),
        (" BTC-USD , ETH-USD ,", ["BTC-USD", "ETH-USD"]),
        ("BTC-USD", ["BTC-USD"]),
        ("", []),
    ],
)
def test_list_from_json_or_commas(text: str, expected: list[str]) -> None:
    assert load_config(Settings, env={"TRADEBUS_SYMBOLS": text}).symbols == expected


def test_list_items_are_converted() -> None:
    assert load_config(Settings, env={"TRADEBUS_PORTS": "1,2"}).ports == [1, 2]
    assert load_config(Settings, env={"TRADEBUS_PORTS": "[3, 4]"}).ports == [3, 4]


def test_optional_list_from_commas() -> None:
    assert load_config(Settings, env={"TRADEBUS_VENUES_ENABLED": "a,b"}).venues_enabled == ["a", "b"]


def test_dict_from_json() -> None:
    assert load_config(Settings, env={"TRADEBUS_LIMITS": '{"BTC-USD": 5}'}).limits == {"BTC-USD": 5}


def test_malformed_json_list_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"'symbols' from environment variable TRADEBUS_SYMBOLS: not valid JSON"):
        load_config(Settings, env={"TRADEBUS_SYMBOLS": '["BTC-USD"'})


def test_bad_list_item_names_the_index_and_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, env={"TRADEBUS_PORTS": "1,two"})
    assert str(caught.value) == (
        "invalid setting 'ports[1]' from environment variable TRADEBUS_PORTS: Expected `int`, got `str`"
    )


# --- unknown keys -----------------------------------------------------------------------------


def test_unknown_key_in_file_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, 'nats_ulr = "nats://bus:4222"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, path=path, env={})
    message = str(caught.value)
    assert message.startswith(f"unknown setting 'nats_ulr' in {path} (did you mean 'nats_url'?)")
    assert "valid settings here: debug, http_port, limits, nats_url, paper, ports, symbols, venue" in message


def test_unknown_nested_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[paper]\nsed = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, path=path, env={})
    assert str(caught.value).startswith(f"unknown setting 'paper.sed' in {path} (did you mean 'paper.seed'?)")
    assert "paper.fill_ratio, paper.seed, paper.speed" in str(caught.value)


def test_unknown_key_in_env_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, env={"TRADEBUS_PAPER__SED": "1"})
    assert str(caught.value).startswith(
        "unknown setting 'paper.sed' from environment variable TRADEBUS_PAPER__SED (did you mean 'paper.seed'?)"
    )


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, env={"TRADEBUS_ZZZZZZ": "1"})
    assert "did you mean" not in str(caught.value)
    assert "valid settings here: debug, http_port" in str(caught.value)


def test_unknown_section_in_env() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'papr' .*TRADEBUS_PAPR__SEED \(did you mean 'paper'\?\)"):
        load_config(Settings, env={"TRADEBUS_PAPR__SEED": "1"})


def test_env_descending_into_a_scalar() -> None:
    with pytest.raises(ConfigError, match=r"'nats_url' is not a section"):
        load_config(Settings, env={"TRADEBUS_NATS_URL__HOST": "x"})


def test_env_naming_a_whole_section() -> None:
    with pytest.raises(ConfigError, match=r"TRADEBUS_PAPER names the section 'paper': .*TRADEBUS_PAPER__<FIELD>"):
        load_config(Settings, env={"TRADEBUS_PAPER": "x"})


def test_file_scalar_where_a_section_belongs(tmp_path: Path) -> None:
    path = write(tmp_path, "paper = 3\n")
    with pytest.raises(ConfigError, match=r"'paper' in .* is a section: write it as a \[paper\] table"):
        load_config(Settings, path=path, env={})


# --- type errors and file errors ------------------------------------------------------------------


def test_type_error_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[paper]\nseed = "lots"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, path=path, env={})
    assert str(caught.value) == f"invalid setting 'paper.seed' in {path}: Expected `int`, got `str`"


def test_type_error_in_env_names_key_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[paper]\nseed = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(Settings, path=path, env={"TRADEBUS_PAPER__SEED": "lots"})
    assert str(caught.value) == (
        "invalid setting 'paper.seed' from environment variable TRADEBUS_PAPER__SEED: Expected `int`, got `str`"
    )


def test_missing_required_settings_say_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Required, env={"TRADEBUS_PAPER__SEED": "1"})
    assert "missing required setting 'nats_url'" in str(caught.value)
    assert "TRADEBUS_NATS_URL" in str(caught.value)


def test_missing_required_nested_setting() -> None:
    with pytest.raises(ConfigError, match=r"missing required setting 'venue.name' .*TRADEBUS_VENUE__NAME"):
        load_config(Settings, env={"TRADEBUS_VENUE__API_KEY": "k-123456"})


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "nats_url = \n")
    with pytest.raises(ConfigError, match=rf"invalid TOML in {path}"):
        load_config(Settings, path=path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope.toml"):
        load_config(Settings, path=tmp_path / "nope.toml", env={})


# --- secrets --------------------------------------------------------------------------------------


def test_secret_fields_from_file_and_env(tmp_path: Path) -> None:
    path = write(tmp_path, '[venue]\nname = "binance"\napi_key = "file-key-0001"\n')
    from_file = load_config(Settings, path=path, env={})
    from_env = load_config(Settings, path=path, env={"TRADEBUS_VENUE__API_KEY": "env-key-0002"})
    assert from_file.venue is not None and from_file.venue.api_key == Secret("file-key-0001")
    assert from_env.venue is not None and from_env.venue.api_key is not None
    assert from_env.venue.api_key.reveal() == "env-key-0002"


def test_secret_field_rejects_non_strings(tmp_path: Path) -> None:
    path = write(tmp_path, '[venue]\nname = "x"\napi_key = 12345\n')
    with pytest.raises(ConfigError, match=r"invalid setting 'venue.api_key' in .*Expected a string secret"):
        load_config(Settings, path=path, env={})


def test_secret_never_prints() -> None:
    secret = Secret("hunter2-config-test")
    renderings = [str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>30}", "%s %r" % (secret, secret)]  # noqa: UP031 - %-formatting is one way a secret leaks
    assert all("hunter2" not in text for text in renderings)
    assert str(secret) == repr(secret) == format(secret, "") == "***"


def test_config_repr_does_not_leak_secrets() -> None:
    settings = load_config(Settings, env={"TRADEBUS_VENUE__NAME": "x", "TRADEBUS_VENUE__API_KEY": "repr-leak-0003"})
    assert "repr-leak-0003" not in repr(settings)


def test_secret_equality_and_hash() -> None:
    assert Secret("same-value") == Secret("same-value")
    assert Secret("same-value") != Secret("other-value")
    assert Secret("same-value") != "same-value"
    assert len({Secret("same-value"), Secret("same-value")}) == 1


def test_secret_is_registered_with_the_redactor() -> None:
    Secret("registered-0004")
    assert redact.redact("token=registered-0004;") == "token=***;"


def test_secret_never_logged() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        setup_logging("config-test", stream=stream)
        secret = Secret("logged-secret-0005")
        logging.getLogger("test").info("key is %s / %r", secret, secret, extra={"credential": secret})
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    output = stream.getvalue()
    assert "logged-secret-0005" not in output
    assert '"msg":"key is *** / ***"' in output
    assert '"credential":"***"' in output


def test_secret_requires_a_string() -> None:
    with pytest.raises(TypeError):
        Secret(1234)  # type: ignore[arg-type]


# --- secrets file ---------------------------------------------------------------------------------


def test_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(
        "# venue credentials\n"
        "\n"
        "BINANCE_API_KEY=plain-value-0006\n"
        'BINANCE_API_SECRET="double # quoted = value"\n'
        "FYERS_TOKEN='single quoted' # trailing comment\n"
        "export NATS_PASSWORD=exported-0007\n"
        "WITH_COMMENT=value-0008 # a comment\n"
        "HASH_INSIDE=abc#def\n"
        "  SPACED  =  spaced-value  \n"
        "EMPTY=\n"
    )
    secrets = load_secrets_file(path)
    assert {key: secret.reveal() for key, secret in secrets.items()} == {
        "BINANCE_API_KEY": "plain-value-0006",
        "BINANCE_API_SECRET": "double # quoted = value",
        "FYERS_TOKEN": "single quoted",
        "NATS_PASSWORD": "exported-0007",
        "WITH_COMMENT": "value-0008",
        "HASH_INSIDE": "abc#def",
        "SPACED": "spaced-value",
        "EMPTY": "",
    }
    assert all(isinstance(secret, Secret) for secret in secrets.values())


@pytest.mark.parametrize("line", ["no-equals-sign-0009", "BAD KEY=leak-0011", 'QUOTED="unterminated-0010'])
def test_malformed_secrets_line_names_line_not_content(tmp_path: Path, line: str) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"# header\nGOOD=good-value-0012\n{line}\n")
    with pytest.raises(ConfigError, match=rf"{path}, line 3") as caught:
        load_secrets_file(path)
    assert line.split("=")[-1] not in str(caught.value)


def test_missing_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read secrets file .*absent.env"):
        load_secrets_file(tmp_path / "absent.env")


def test_a_log_level_outside_the_known_ones_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    from tradebus.services.settings import load_settings

    path = tmp_path / "tradebus.toml"
    path.write_text('log_level = "debgu"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert str(caught.value) == (
        f"invalid setting 'log_level' in {path}: Invalid enum value 'debgu' (did you mean 'DEBUG'?); "
        "valid values: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    with pytest.raises(ConfigError, match=r"TRADEBUS_LOG_LEVEL: Invalid enum value 'LOUD'; valid values: DEBUG, "):
        load_settings(env={"TRADEBUS_LOG_LEVEL": "LOUD"})
    assert load_settings(env={"TRADEBUS_LOG_LEVEL": "warning"}).log_level == "WARNING"  # any case is fine



def test_a_bus_outage_grace_beyond_the_duplicate_window_is_named() -> None:
    """Publishing again after a bus break is safe only within the streams' duplicate window;
    a short window (tests use one of a second) is allowed, and named at start-up."""
    from tradebus.shared.service import RuntimeSettings

    assert load_config(RuntimeSettings, env={"TRADEBUS_BUS_OUTAGE_GRACE": "120"}).republish_risk() == ""
    risky = load_config(RuntimeSettings, env={"TRADEBUS_BUS_OUTAGE_GRACE": "600", "TRADEBUS_STREAMS__DUPLICATE_WINDOW": "300"})
    assert risky.republish_risk().startswith("bus_outage_grace (600s) plus the publish timeout (10s) reach [streams] "
                                             "duplicate_window (300s)")
    with pytest.raises(ConfigError, match="bus_outage_grace.*> 0"):
        load_config(RuntimeSettings, env={"TRADEBUS_BUS_OUTAGE_GRACE": "0"})
