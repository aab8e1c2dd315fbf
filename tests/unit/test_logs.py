"""setup_logging: JSON lines, extra fields, redaction by value and by field name, idempotence."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.shared.config import Secret
from tradebus.shared.logs import NOISY_LOGGERS, Redactor, redact, setup_logging

log = logging.getLogger("tradebus.test")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging changes process-wide state: put the root (and quieted) loggers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


@pytest.fixture
def capture() -> Callable[[], list[dict]]:
    """Set up JSON logging into a buffer; calling the result parses what was logged so far."""
    stream = io.StringIO()
    setup_logging("test-svc", stream=stream)
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line(capture: Callable[[], list[dict]]) -> None:
    log.info("first")
    log.warning("second %s", 2)
    first, second = capture()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first | {"ts": None} == {
        "ts": None,
        "level": "INFO",
        "service": "test-svc",
        "logger": "tradebus.test",
        "msg": "first",
    }
    assert (second["level"], second["msg"]) == ("WARNING", "second 2")


def test_extra_fields_are_included(capture: Callable[[], list[dict]]) -> None:
    log.info("order", extra={"order_id": "o-1", "qty": 3, "price": Decimal("1.5"), "tags": {"venue": "paper"}})
    (record,) = capture()
    assert record["order_id"] == "o-1"
    assert record["qty"] == 3
    assert record["price"] == "1.5"
    assert record["tags"] == {"venue": "paper"}


def test_extra_fields_cannot_override_fixed_fields(capture: Callable[[], list[dict]]) -> None:
    log.info("hi", extra={"service": "spoofed", "level": "DEBUG"})
    (record,) = capture()
    assert (record["service"], record["level"]) == ("test-svc", "INFO")


def test_unencodable_extra_values_are_stringified(capture: Callable[[], list[dict]]) -> None:
    log.info("hi", extra={"error": ValueError("nope")})
    assert capture()[0]["error"] == "nope"


def test_exception_traceback_in_exc(capture: Callable[[], list[dict]]) -> None:
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.exception("failed")
    (record,) = capture()
    assert record["msg"] == "failed"
    assert record["exc"].startswith("Traceback (most recent call last):")
    assert record["exc"].endswith("RuntimeError: kaput")


def test_level_filters(capture: Callable[[], list[dict]]) -> None:
    log.debug("hidden")
    log.info("shown")
    assert [record["msg"] for record in capture()] == ["shown"]


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("svc", level="LOUD")


# --- redaction ------------------------------------------------------------------------------------


def test_registered_values_redacted_everywhere(capture: Callable[[], list[dict]]) -> None:
    redact.register("s3cr3t-logs-0001")
    try:
        raise ConnectionError("auth failed for s3cr3t-logs-0001")
    except ConnectionError:
        log.exception("login with s3cr3t-logs-0001 failed", extra={"detail": "key=s3cr3t-logs-0001"})
    (record,) = capture()
    assert "s3cr3t-logs-0001" not in json.dumps(record)
    assert record["msg"] == "login with *** failed"
    assert record["detail"] == "key=***"
    assert record["exc"].endswith("ConnectionError: auth failed for ***")


def test_value_needing_json_escapes_is_redacted(capture: Callable[[], list[dict]]) -> None:
    redact.register('quo"te\\back-0002')
    log.info('value: quo"te\\back-0002')
    assert capture()[0]["msg"] == "value: ***"


@pytest.mark.parametrize(
    "name",
    ["secret", "client_secret", "Password", "passwd", "nats_token", "api_key", "APIKEY", "private_key",
     "passphrase", "Authorization"],
)
def test_secret_named_fields_are_masked(capture: Callable[[], list[dict]], name: str) -> None:
    log.info("connect", extra={name: "visible-0003", "user": "alice"})
    (record,) = capture()
    assert record[name] == "***"
    assert record["user"] == "alice"


def test_secret_named_keys_inside_dicts_are_masked(capture: Callable[[], list[dict]]) -> None:
    log.info("request", extra={"headers": {"Authorization": "Bearer abc", "Accept": "json"}})
    assert capture()[0]["headers"] == {"Authorization": "***", "Accept": "json"}


def test_secret_objects_render_masked(capture: Callable[[], list[dict]]) -> None:
    secret = Secret("object-0004")
    log.info("using %s", secret, extra={"credential": secret, "nested": {"value": secret}})
    (record,) = capture()
    assert (record["msg"], record["credential"], record["nested"]) == ("using ***", "***", {"value": "***"})


def test_short_values_are_not_redacted() -> None:
    redactor = Redactor()
    redactor.register("abc")
    assert redactor.redact("abc abcd") == "abc abcd"


def test_longest_registered_value_wins() -> None:
    redactor = Redactor()
    redactor.register("pass")
    redactor.register("password123")
    assert redactor.redact("x password123 pass") == "x *** ***"


@given(
    secret=st.text(alphabet=st.characters(blacklist_characters="*"), min_size=4),
    before=st.text(alphabet=st.characters(blacklist_characters="*")),
    after=st.text(alphabet=st.characters(blacklist_characters="*")),
)
def test_registered_value_never_survives(secret: str, before: str, after: str) -> None:
    redactor = Redactor()
    redactor.register(secret)
    assert secret not in redactor.redact(before + secret + after)


# --- set-up ---------------------------------------------------------------------------------------


def test_setup_is_idempotent() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("svc", stream=first)
    setup_logging("svc", stream=second)
    assert len(root.handlers) == before + 1
    log.info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_noisy_loggers_quieted_but_never_below_root() -> None:
    setup_logging("svc", level="DEBUG", stream=io.StringIO())
    assert logging.getLogger("nats").level == logging.WARNING
    setup_logging("svc", level="ERROR", stream=io.StringIO())
    assert logging.getLogger("nats").level == logging.ERROR


def test_text_mode_is_one_key_value_line() -> None:
    stream = io.StringIO()
    setup_logging("svc", json=False, stream=stream)
    redact.register("text-mode-0005")
    log.info("hello world", extra={"qty": 3, "venue": "paper", "token": "t", "note": "has text-mode-0005"})
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(
        r'ts=\S+Z level=INFO service=svc logger=tradebus.test msg="hello world" qty=3 venue=paper token=\*\*\* '
        r'note="has \*\*\*"',
        line,
    )


def test_text_mode_keeps_tracebacks_on_one_line() -> None:
    stream = io.StringIO()
    setup_logging("svc", json=False, stream=stream)
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("failed")
    (line,) = stream.getvalue().splitlines()
    assert 'exc="Traceback (most recent call last):\\n' in line


def test_formatting_errors_do_not_echo_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    stream = io.StringIO()
    setup_logging("svc", stream=stream)
    (handler,) = [h for h in root.handlers if h not in before]
    # Handed to our handler directly: pytest's own capture handler re-raises formatting errors.
    record = logging.makeLogRecord({"name": "tradebus.test", "msg": "key %d", "args": ("unregistered-key-0006",)})
    handler.handle(record)  # wrong placeholder: the record cannot be formatted
    err = capsys.readouterr().err
    assert "logging error (TypeError) in a record of tradebus.test" in err
    assert "unregistered-key-0006" not in err
    assert stream.getvalue() == ""
