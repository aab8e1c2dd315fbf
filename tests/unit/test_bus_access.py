"""The parts of getting onto the bus that need no server: printable URLs, TLS files, the
settings that name them, and reading the server's permission violations."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import nats
import pytest

from tradebus.shared.busaccess import PermissionRefused, Refusals, public_url
from tradebus.shared.bustls import TlsFiles, tls_context
from tradebus.shared.config import ConfigError, load_config
from tradebus.shared.service import RuntimeSettings

from ..integration.tlscerts import generate


@pytest.mark.parametrize(("url", "shown"), [
    ("nats://alpha:s3cretpw@bus.example:4222", "nats://***@bus.example:4222"),
    ("tls://token@10.0.0.1:4222, nats://u:p@b:4222", "tls://***@10.0.0.1:4222,nats://***@b:4222"),
    ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
    ("alpha:pw@host:4222", "***@host:4222"),
])
def test_public_url_masks_user_info(url: str, shown: str) -> None:
    assert public_url(url) == shown


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - TlsCertificates
    return generate(tmp_path_factory.mktemp("certs"))


def test_tls_context_of_no_files_is_none_and_of_a_ca_and_client_pair_is_mutual(certs) -> None:  # noqa: ANN001
    assert tls_context(TlsFiles()) is None
    context = tls_context(TlsFiles(ca=str(certs.ca), cert=str(certs.client_cert), key=str(certs.client_key)))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_tls_files_that_cannot_be_used_are_config_errors_naming_the_setting(certs, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=r"client certificate needs its key \(setting nats_tls_key"):
        tls_context(TlsFiles(cert=str(certs.client_cert)))
    with pytest.raises(ConfigError, match=r"cannot read the TLS CA file .*missing.pem \(setting nats_tls_ca.*"
                                          r"TRADEBUS_NATS_TLS_CA\): No such file"):
        tls_context(TlsFiles(ca=str(tmp_path / "missing.pem")))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="cannot use the TLS CA file"):
        tls_context(TlsFiles(ca=str(not_pem)))
    with pytest.raises(ConfigError, match="cannot use the TLS client certificate .* with the key") as mismatch:
        tls_context(TlsFiles(cert=str(certs.client_cert), key=str(certs.server_key)))  # not its key
    assert "PRIVATE KEY" not in str(mismatch.value)


def test_bus_identity_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_config(RuntimeSettings, env={"TRADEBUS_NATS_CREDENTIALS": "/run/secrets/risk.creds",
                                                 "TRADEBUS_NATS_TLS_CA": "/ca.pem", "TRADEBUS_NATS_TLS_CERT": "/c.pem",
                                                 "TRADEBUS_NATS_TLS_KEY": "/k.pem"})
    assert (settings.nats_credentials, settings.nats_tls_ca, settings.nats_tls_cert, settings.nats_tls_key) == (
        "/run/secrets/risk.creds", "/ca.pem", "/c.pem", "/k.pem")
    with pytest.raises(ConfigError, match="cannot read credentials file"):
        settings.bus_identity()
    assert load_config(RuntimeSettings, env={}).bus_identity() == (None, TlsFiles())


def test_permission_violations_are_read_from_the_server_error() -> None:
    refusals = Refusals("alpha", "_INBOX.alpha")
    publish, claimed = refusals.report(nats.errors.Error('nats: permissions violation for publish to "tradebus.ctl.risk"'))
    assert str(publish) == "the bus refused user 'alpha' permission to publish to tradebus.ctl.risk" and not claimed
    subscribe, _ = refusals.report(nats.errors.Error('nats: permissions violation for subscription to "tradebus.>"'))
    assert (subscribe.action, subscribe.subject) == ("subscribe to", "tradebus.>")
    assert refusals.report(nats.errors.Error("nats: stale connection")) == (None, False)


async def test_a_refusal_ends_the_operation_waiting_on_it_but_never_swallows_a_cancellation() -> None:
    refusals = Refusals("alpha", "_INBOX.alpha")
    violation = nats.errors.Error('nats: permissions violation for publish to "tradebus.ctl.risk"')

    def waiting() -> asyncio.Task[None]:
        return asyncio.create_task(refusals.guard(asyncio.sleep(10), publish=["tradebus.ctl.risk"], replies=False))

    refused = waiting()
    await asyncio.sleep(0)
    assert refusals.report(violation)[1]  # claimed by the waiting operation
    with pytest.raises(PermissionRefused, match="permission to publish to tradebus.ctl.risk"):
        await refused
    cancelled = waiting()
    await asyncio.sleep(0)
    refusals.report(violation)
    cancelled.cancel()  # the caller's own cancellation wins
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert refusals.report(violation)[1] is False  # nobody waits any more
