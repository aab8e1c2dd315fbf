"""deploy/Dockerfile, checked statically (no Docker engine here): one target per service
family, every venue of the VenueSpec registry with a connector target of its own that
installs its extra and nothing else, the runtime non-root with a health probe that really
fails a dead service, and a build context that holds what the build copies and no secret."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tradebus.services.connector.venuespecs import VENUE_SPECS
from tradebus.shared.health import HealthServer, ServiceMetrics

from .deployfiles import (
    DOCKERIGNORE,
    REPO,
    base_env,
    check_settings,
    dockerfile_instructions,
    exec_form,
    healthcheck_argv,
    inherited,
    lineage,
    stages,
)

PYTHON_IMAGE = "python:3.11-slim"
CORE = "core"


def install_stage(target: str) -> str:
    """The stage whose virtualenv a target copies (`COPY --from=<stage> /opt/tradebus ...`)."""
    [copy] = [arg for arg in stages()[target].values("COPY") if arg.startswith("--from=")]
    return copy.split()[0].removeprefix("--from=")


def pip_install(stage: str) -> tuple[str, str]:
    """(constraints file, install target) of the stage's `pip install -c FILE TARGET`."""
    [run] = [arg for arg in stages()[stage].values("RUN") if "pip install" in arg]
    match = re.search(r"pip install -c (\S+) \"([^\"]+)\"", run)
    assert match, run
    return match[1], match[2]


def extras(install_target: str) -> set[str]:
    match = re.fullmatch(r"\.(?:\[([^\]]*)\])?", install_target)
    assert match, install_target
    return set(filter(None, (match[1] or "").split(",")))


def test_every_venue_has_a_connector_target_installing_only_its_extra() -> None:
    """A new VenueSpec without its image target fails here (and in test_compose /
    test_kubernetes for its compose service and Deployment)."""
    targets = {name for name in stages() if name.startswith("connector-")}
    assert targets == {f"connector-{venue}" for venue in VENUE_SPECS}
    for venue, spec in VENUE_SPECS.items():
        target = f"connector-{venue}"
        assert exec_form(inherited(target, "CMD") or "") == ["run", "connector", "--venue", venue]
        constraints, install = pip_install(install_stage(target))
        if spec.extra is None:
            assert install == ".${EXTRAS:+[${EXTRAS}]}", target  # optional extras only (parquet)
        else:
            assert extras(install) == {spec.extra}, target
        # a venue with an environment of its own (Fyers) is locked by its own constraints
        assert constraints == ("constraints.txt" if spec.environment is None else "constraints-fyers.txt"), target
        if spec.sdk is not None:  # the install stage proves the SDK imports
            assert any(f"import {spec.sdk}" in run for run in stages()[install_stage(target)].values("RUN")), target


def test_the_core_target_runs_risk_oms_audit_and_provision_with_postgres() -> None:
    constraints, install = pip_install(install_stage(CORE))
    assert constraints == "constraints.txt" and extras(install) == {"postgres"}
    assert exec_form(inherited(CORE, "CMD") or "") == ["run", "risk"]


def test_every_target_runs_tradebus_as_a_fixed_non_root_user_with_a_health_check() -> None:
    targets = [name for name in stages() if name == CORE or name.startswith("connector-")]
    for target in targets:
        chain = [stage.name for stage in lineage(target)]
        assert "runtime" in chain, f"{target} is not built on the shared runtime stage"
        assert exec_form(inherited(target, "ENTRYPOINT") or "") == ["tradebus"], target
        user = (inherited(target, "USER") or "root").split(":")[0]
        assert user.isdigit() and int(user) >= 1000, f"{target} runs as {user}"
        assert "/healthz" in (inherited(target, "HEALTHCHECK") or ""), target
        # what the target ships is one virtualenv, copied from its install stage
        assert install_stage(target).startswith("install-"), target
    # the last stage is what a plain `docker build` makes: the paper connector, as before targets
    assert list(stages())[-1] == "connector-paper"


def test_every_stage_builds_from_the_same_slim_python() -> None:
    instructions = dockerfile_instructions()
    args = dict(arg.split("=", 1) for name, arg in instructions if name == "ARG" and "=" in arg)
    for stage in stages().values():
        if stage.base in stages():
            continue
        assert stage.base.replace("${PYTHON_VERSION}", args["PYTHON_VERSION"]) == PYTHON_IMAGE, stage.name


def test_the_runtime_environment_is_valid_tradebus_settings() -> None:
    environment = " ".join(stages()["runtime"].values("ENV"))
    assert "TRADEBUS_HTTP_PORT=8080" in environment and "TRADEBUS_HTTP_HOST=0.0.0.0" in environment
    check_settings(dict(re.findall(r"(TRADEBUS_\w+)=(\S+)", environment)))


def test_the_paper_extras_build_argument_selects_optional_dependencies() -> None:
    _, install = pip_install(install_stage("connector-paper"))
    for value, target in (("", "."), ("parquet", ".[parquet]"), ("parquet,bench", ".[parquet,bench]")):
        out = subprocess.run(["sh", "-c", f'printf %s "{install}"'], env={"EXTRAS": value},
                             capture_output=True, text=True, check=True).stdout
        assert out == target


async def test_the_health_probe_passes_only_while_the_service_is_live() -> None:
    live = True
    health = HealthServer(host="127.0.0.1", port=0, registry=ServiceMetrics("probe").registry,
                          is_live=lambda: live, is_ready=lambda: True)
    await health.start()
    argv = healthcheck_argv()

    async def probe(port: int) -> int:
        process = await asyncio.create_subprocess_exec(
            *argv, env={**base_env(), "TRADEBUS_HTTP_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(process.wait(), 20)

    try:
        assert await probe(health.port) == 0
        live = False
        assert await probe(health.port) != 0  # 503
    finally:
        await health.stop()
    assert await probe(health.port) != 0  # nothing listening


def build_context_paths() -> list[str]:
    """The allow-list of .dockerignore (`*` then `!path` lines)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore should exclude everything, then allow what the build needs"
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    allowed = build_context_paths()
    for secret in (".env", ".git", ".venv", ".venv-fyers", "deploy", "tests", "secrets"):
        assert secret not in allowed
    copied = []
    for name, arg in dockerfile_instructions():
        if name == "COPY" and not arg.startswith("--from"):
            copied += arg.split()[:-1]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is copied but excluded by .dockerignore"


def test_the_package_builds_from_the_image_build_context(tmp_path: Path) -> None:
    """What `pip install .` does in the image, with only the files .dockerignore lets through."""
    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed in this environment")
    context = tmp_path / "context"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for path in build_context_paths():
        source = REPO / path
        if source.is_dir():
            shutil.copytree(source, context / path, ignore=ignore)
        else:
            shutil.copy(source, context / path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "wheel").glob("tradebus-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for module in ("tradebus/cli/main.py", "tradebus/shared/service.py", "tradebus/schemas/subjects.py",
                   "tradebus/services/connector/service.py"):
        assert module in names
    assert "tradebus = tradebus.cli.main:main" in entry_points
    assert not [name for name in names if "/venues/_template/" in name], "the venue template is no venue to ship"


