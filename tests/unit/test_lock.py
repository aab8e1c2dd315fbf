"""constraints.txt locks the whole dependency set that the README's install command resolves."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _closure(root: str, extras: set[str]) -> set[str]:
    """Every distribution that installing root[extras] pulls in, read from installed metadata."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # an extra not installed here (bench): its own pin is checked
            continue
        for text in requires:
            requirement = Requirement(text)
            environment = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environment):
                continue
            key = canonicalize_name(requirement.name)
            if key == canonicalize_name(root):  # tradebus[test] names tradebus[ccxt,alpaca]
                todo.append((root, set(requirement.extras)))
                continue
            if key not in seen:
                seen.add(key)
                todo.append((requirement.name, set(requirement.extras)))
    return seen


def test_every_dependency_of_the_test_install_is_locked() -> None:
    locked = _locked()
    missing = sorted(_closure("tradebus", {"test", "bench"}) - set(locked))
    assert not missing, f"not in constraints.txt (add them on purpose): {missing}"


def test_the_installed_versions_are_the_locked_ones() -> None:
    """A fresh install from the README gets exactly the locked releases."""
    drifted = {}
    for name in _closure("tradebus", {"test"}):
        installed = metadata.version(name)
        if _locked().get(name) != installed:
            drifted[name] = (installed, _locked().get(name))
    assert not drifted, f"installed vs locked: {drifted}"


def test_the_install_command_and_the_image_use_the_lock() -> None:
    assert "-c constraints.txt" in (REPO / ".ci" / "run").read_text()
    assert "-c constraints.txt" in (REPO / "deploy" / "Dockerfile").read_text()
