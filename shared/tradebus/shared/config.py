"""Typed service configuration: a TOML file overridden by `TRADEBUS_*` environment variables.

A service describes its settings as a msgspec Struct (nested Structs are `[sections]`).
Every key is checked against that model before decoding, so a typo fails start-up with a
message naming the key, where it came from and what was probably meant, instead of being
silently ignored. Environment variables win over the file: `TRADEBUS_NATS_URL` sets
`nats_url`, `TRADEBUS_PAPER__SEED` sets `seed` in the `[paper]` section.

Secrets are typed `Secret`: they never print, and their values are registered with the log
redactor the moment they are loaded.
"""

from __future__ import annotations

import copy
import difflib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from .logs import redact

T = TypeVar("T")

ENV_PREFIX = "TRADEBUS_"
RESERVED_ENV_NAMES = ("CONFIG", "SECRETS_FILE")
"""Suffixes (after the prefix) of variables that locate configuration rather than being settings."""

_SEQUENCE_TYPES = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType, mi.TupleType)
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_INVALID_ENUM = re.compile(r"^Invalid enum value '?(?P<value>.*?)'?$")
_DOTENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

KeyPath = tuple[str, ...]
"""A setting's position: ('paper', 'seed') is `seed` in the `[paper]` section."""


EXIT_CONFIG = 78
"""Exit code of a process that refused its configuration (EX_CONFIG of sysexits.h): a
supervisor restarting it would only see the same refusal again."""


class StartRefused(Exception):
    """Raised by a service's start-up when running would be wrong; the message says why and
    what to change. The service exits with EXIT_CONFIG (EXIT_REFUSED) without a traceback."""


class ConfigError(Exception):
    """The configuration cannot be loaded; the message says which key, from where, and why."""


class Secret:
    """A secret string that cannot leak by being printed, formatted or logged.

    `str`, `repr` and `format` all give "***"; `reveal()` is the one explicit way to the value.
    Creating a Secret registers its value with the log redactor, so the value is masked
    even where it was copied out (e.g. into an exception message).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value
        redact.register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    __repr__ = __str__

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: equality is how tokens tend to get checked.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def load_config(
    model: type[T],
    *,
    path: str | os.PathLike[str] | None = None,
    table: tuple[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    prefix: str = ENV_PREFIX,
) -> T:
    """Build `model` from the TOML file at `path`, or from an already read `table` given as
    (where it came from, contents), overridden by `prefix`-ed variables of `env`.

    `env=None` reads `os.environ`. Raises ConfigError for unknown keys, malformed values and
    missing required settings.
    """
    schema = mi.type_info(model)
    if not isinstance(schema, mi.StructType):
        raise TypeError(f"load_config needs a msgspec.Struct model, not {model!r}")
    raw: dict[str, Any] = {}
    sources: dict[KeyPath, str] = {}
    if path is not None:
        raw = _read_toml(path)
        _check_table(raw, schema, (), f"in {os.fspath(path)}", sources)
    elif table is not None:
        raw = copy.deepcopy(dict(table[1]))
        _check_table(raw, schema, (), f"in {table[0]}", sources)
    _apply_env(raw, schema, os.environ if env is None else env, prefix, sources)
    try:
        return msgspec.convert(raw, model, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, schema, sources, prefix) from None


def load_secrets_file(path: str | os.PathLike[str]) -> dict[str, Secret]:
    """Read a dotenv-style file: `KEY=VALUE` lines, `#` comments, optionally quoted values.

    An unquoted value ends at ` #` (an inline comment); a quoted one is taken verbatim. An
    optional leading `export ` is accepted so the same file can be sourced by a shell.
    Errors name the line number but never echo the line: it may hold a secret.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read secrets file {os.fspath(path)}: {exc.strerror}") from None
    secrets: dict[str, Secret] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{os.fspath(path)}, line {number}"
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not _DOTENV_KEY.match(key):
            raise ConfigError(f"{where}: expected KEY=VALUE")
        secrets[key] = Secret(_dotenv_value(value.strip(), where))
    return secrets


def write_secret(path: str | os.PathLike[str], key: str, value: str) -> None:
    """Set `key` in the dotenv-style secrets file at `path`, keeping its other lines, with
    mode 0600. Rewritten in place, not replaced by a new file: a container that mounts the
    one file (compose secrets, a bind mount) keeps seeing the file it mounted. The value is
    quoted, so a reader that catches the file half-written finds no complete value (an
    unterminated quote) rather than half a token. Errors never echo the value."""
    if not _DOTENV_KEY.match(key) or "'" in value or "\n" in value:
        raise ConfigError(f"cannot write {key} into a secrets file")
    target = Path(path)
    try:
        lines = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
    except OSError as exc:
        raise ConfigError(f"cannot read secrets file {target}: {exc.strerror}") from None
    kept = [line for line in lines if line.strip().removeprefix("export ").partition("=")[0].strip() != key]
    text = "\n".join([*kept, f"{key}='{value}'"]) + "\n"
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # O_CREAT's mode is masked by the umask and ignored for an existing file
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot write secrets file {target}: {exc.strerror}") from None


def _dotenv_value(text: str, where: str) -> str:
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0:
            raise ConfigError(f"{where}: unterminated quoted value")
        return text[1:end]
    return re.split(r"\s+#", text, maxsplit=1)[0]


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {os.fspath(path)}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {os.fspath(path)}: {exc}") from None


# --- schema walking ------------------------------------------------------------------------


def _fields(struct: mi.StructType) -> dict[str, mi.Type]:
    return {field.encode_name: field.type for field in struct.fields}


def _unwrap_optional(type_: mi.Type) -> mi.Type:
    """`X | None` -> X, so an optional section or list is treated like a required one."""
    if isinstance(type_, mi.UnionType):
        others = [t for t in type_.types if not isinstance(t, mi.NoneType)]
        if len(others) == 1:
            return others[0]
    return type_


def _section(type_: mi.Type) -> mi.StructType | None:
    """The Struct behind a field if the field is a section, else None."""
    inner = _unwrap_optional(type_)
    return inner if isinstance(inner, mi.StructType) else None


def _dotted(path: KeyPath) -> str:
    return ".".join(path)


def _unknown(path: KeyPath, struct: mi.StructType, source: str) -> ConfigError:
    valid = sorted(_fields(struct))
    message = f"unknown setting {_dotted(path)!r} {source}"
    close = difflib.get_close_matches(path[-1], valid, n=1)
    if close:
        message += f" (did you mean {_dotted(path[:-1] + (close[0],))!r}?)"
    listing = ", ".join(_dotted(path[:-1] + (name,)) for name in valid)
    return ConfigError(f"{message}; valid settings here: {listing}")


def _check_table(table: dict[str, Any], struct: mi.StructType, at: KeyPath, source: str, sources: dict[KeyPath, str]) -> None:
    """Reject unknown keys of a file table (recursively) and remember where each value came from."""
    fields = _fields(struct)
    for key, value in table.items():
        path = at + (key,)
        if key not in fields:
            raise _unknown(path, struct, source)
        section = _section(fields[key])
        if section is None:
            sources[path] = source
        elif isinstance(value, dict):
            _check_table(value, section, path, source, sources)
        else:
            raise ConfigError(f"setting {_dotted(path)!r} {source} is a section: write it as a [{_dotted(path)}] table")


def _holds_free_form_tables(type_: mi.Type) -> bool:
    """`dict[str, dict[str, Any]]`: tables whose fields only their owner knows."""
    inner = _unwrap_optional(type_)
    return isinstance(inner, mi.DictType) and isinstance(_unwrap_optional(inner.value_type), mi.DictType)


def _resolve(struct: mi.StructType, path: KeyPath, source: str, env_name: str) -> mi.Type | None:
    """The type of the setting at `path`, which must be a leaf (not a section); None where the
    path runs into a table of free-form tables (`[venues.<venue>]`): its owner checks those
    against their own types, environment included (settings.venue_config)."""
    for depth, part in enumerate(path[:-1], start=1):
        fields = _fields(struct)
        if part not in fields:
            raise _unknown(path[:depth], struct, source)
        if _holds_free_form_tables(fields[part]) and depth < len(path) - 1:
            return None
        section = _section(fields[part])
        if section is None:
            leaf = _dotted(path[:depth])
            raise ConfigError(f"unknown setting {_dotted(path)!r} {source} ({leaf!r} is not a section)")
        struct = section
    fields = _fields(struct)
    if path[-1] not in fields:
        raise _unknown(path, struct, source)
    if _section(fields[path[-1]]) is not None:
        raise ConfigError(f"{env_name} names the section {_dotted(path)!r}: set its fields as {env_name}__<FIELD>")
    return fields[path[-1]]


# --- environment ---------------------------------------------------------------------------


def _apply_env(
    raw: dict[str, Any], schema: mi.StructType, env: Mapping[str, str], prefix: str, sources: dict[KeyPath, str]
) -> None:
    reserved = {prefix + suffix for suffix in RESERVED_ENV_NAMES}
    for name, text in sorted(env.items()):
        if not name.startswith(prefix) or name in reserved:
            continue
        path = tuple(name[len(prefix) :].lower().split("__"))
        source = f"from environment variable {name}"
        type_ = _resolve(schema, path, source, name)
        if type_ is None:
            continue
        value = _env_value(text, type_, path, source)
        node = raw
        for part in path[:-1]:  # sections already in `raw` are dicts: _check_table made sure
            node = node.setdefault(part, {})
        node[path[-1]] = value
        sources[path] = source


def _env_value(text: str, type_: mi.Type, path: KeyPath, source: str) -> Any:
    """Shape an environment string for msgspec.convert: containers need parsing, scalars don't.

    Scalars stay strings (convert with strict=False turns "4222" into 4222). A list may be a
    JSON array or comma-separated items; a dict must be a JSON object.
    """
    inner = _unwrap_optional(type_)
    if isinstance(inner, _SEQUENCE_TYPES):
        if text.lstrip().startswith("["):
            return _env_json(text, path, source)
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(inner, mi.DictType):
        return _env_json(text, path, source)
    return text


def _env_json(text: str, path: KeyPath, source: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"invalid setting {_dotted(path)!r} {source}: not valid JSON ({exc})") from None


# --- decoding ------------------------------------------------------------------------------


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret:
        if isinstance(obj, str):
            return Secret(obj)
        raise TypeError(f"Expected a string secret, got `{type(obj).__name__}`")
    raise NotImplementedError(f"config fields of type {type_!r} are not supported")


def _validation_error(
    exc: msgspec.ValidationError, schema: mi.StructType, sources: dict[KeyPath, str], prefix: str
) -> ConfigError:
    """Rephrase msgspec's "... - at `$.paper.seed`" in terms of settings and where they came from."""
    problem, _, location = str(exc).partition(" - at `$")
    location = location.rstrip("`").lstrip(".")
    missing = _MISSING_FIELD.match(problem)
    if missing:
        key = f"{location}.{missing['field']}" if location else missing["field"]
        env_name = prefix + key.replace(".", "__").upper()
        return ConfigError(f"missing required setting {key!r} (set it in the config file or as {env_name})")
    if not location:  # a rule between settings (a `__post_init__`): its message names them
        return ConfigError(f"invalid settings: {problem}")
    parts = tuple(re.split(r"\.|\[", location))
    source = next((sources[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in sources), None)
    where = f" {source}" if source else ""
    return ConfigError(f"invalid setting {location!r}{where}: {problem}{_choices(schema, parts, problem)}")


def _choices(schema: mi.StructType, path: KeyPath, problem: str) -> str:
    """For a value outside an enum: the closest valid value and the list of valid ones."""
    invalid = _INVALID_ENUM.match(problem)
    if invalid is None:
        return ""
    type_: mi.Type = schema
    for part in path:
        struct = _section(type_)
        if struct is None or part not in _fields(struct):
            return ""
        type_ = _fields(struct)[part]
    enum_type = _unwrap_optional(type_)
    if not isinstance(enum_type, mi.EnumType):
        return ""
    valid = [str(member.value) for member in enum_type.cls]
    by_lower = {value.lower(): value for value in valid}
    close = difflib.get_close_matches(invalid["value"].lower(), list(by_lower), n=1)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return f"{hint}; valid values: {', '.join(valid)}"
