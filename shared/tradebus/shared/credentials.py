"""Bus credentials: the identity a process connects with, from a private file.

A credentials file is TOML with two keys:

    user = "risk"
    password = "..."

It must belong to the user running the process and be readable by nobody else (mode 0600 or
stricter): a wider file is refused at start-up, as is an empty user or password. The password
is a `Secret` (never printed or logged) from the moment it is read. `tradebus up --secure`
writes one file per identity into the data dir; deployments mount them as secrets.

Every identity subscribes only to its own inboxes (`_INBOX.<user>.>`, see natsconf.py), so
the connection uses that prefix for requests, pulls and publish acks.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

import msgspec

from .config import ConfigError, Secret

_USER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TOO_OPEN = stat.S_IRWXG | stat.S_IRWXO


class Credentials(msgspec.Struct, frozen=True):
    user: str
    password: Secret

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.user)


def inbox_prefix(user: str) -> str:
    """The only inboxes `user` may subscribe to: `<prefix>.>`."""
    return f"_INBOX.{user}"


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    where = os.fspath(path)
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & _TOO_OPEN:
                raise ConfigError(f"credentials file {where} is readable by others (mode {stat.S_IMODE(mode):o}): "
                                  f"chmod 600 it")
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {where}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError:
        # Never echo the parser's message: it quotes the line, which may hold the password.
        raise ConfigError(f"credentials file {where} is not valid TOML") from None
    unknown = sorted(set(table) - {"user", "password"})
    if unknown:
        raise ConfigError(f"credentials file {where}: unknown keys {unknown} (expected user and password)")
    user, password = table.get("user"), table.get("password")
    if not isinstance(user, str) or not _USER.match(user):
        raise ConfigError(f"credentials file {where}: `user` is missing or not a plain name")
    if not isinstance(password, str) or not password.strip():
        raise ConfigError(f"credentials file {where}: `password` is missing or empty")
    return Credentials(user, Secret(password))


def write_credentials(path: str | os.PathLike[str], user: str, password: str) -> Path:
    """Write a credentials file readable by its owner only; created that way, never widened."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{target.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(f"# tradebus bus credentials: keep private (mode 0600)\nuser = {user!r}\npassword = {password!r}\n"
                   .replace("'", '"'))
    os.replace(temporary, target)
    return target


def new_password() -> str:
    """A random password nats-server reads as a plain word (a letter first, then letters and digits)."""
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(39))


def connect_options(credentials: Credentials | None) -> dict[str, str]:
    """nats.connect() keyword arguments for `credentials` (none for an open bus)."""
    if credentials is None:
        return {}
    return {"user": credentials.user, "password": credentials.password.reveal(), "inbox_prefix": credentials.inbox_prefix}
