"""What the newest releases of our dependencies would change, before anyone is surprised by it.

    .venv/bin/python bench/dependency_drift.py [--tests tests/unit] [--keep]

Installs this checkout with the `test` and `bench` extras into a scratch virtualenv without
constraints.txt (so pip takes the newest releases it can find), then lists every package
whose version moved against the lock and runs the given tests (default: the unit tests,
which include the generated-artefact drift checks) in that environment. Nothing in the
checkout changes. To adopt the new set, regenerate constraints.txt from the scratch
environment (`--keep` leaves it in place and prints its path) once the tests pass there.

The last line printed is one JSON object: {"bench": "dependency_drift", "value": <packages
moved>, "baseline": <packages locked>, "unit": "packages", "ratio": ..., "tests_failed": ...}.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[canonical(match[1])] = match[2]
    return found


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", default="tests/unit", help="pytest target(s) run in the scratch environment")
    parser.add_argument("--keep", action="store_true", help="keep the scratch environment and print its path")
    args = parser.parse_args()

    locked = pins((REPO / "constraints.txt").read_text().splitlines())
    scratch = Path(tempfile.mkdtemp(prefix="tradebus-drift-"))
    venv = scratch / "venv"
    python = venv / "bin" / "python"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "--upgrade-strategy", "eager",
                       "pip", "-e", f"{REPO}[test,bench]"])
        if install.returncode != 0:
            print(install.stdout + install.stderr)
            print(json.dumps({"bench": "dependency_drift", "value": None, "baseline": len(locked),
                              "unit": "packages", "ratio": None, "error": "install failed"}))
            return 1
        newest = pins(run([str(python), "-m", "pip", "freeze", "--exclude-editable"]).stdout.splitlines())
        newest["pip"] = run([str(python), "-m", "pip", "--version"]).stdout.split()[1]  # "pip X.Y from ..."

        moved = {name: (locked.get(name), version) for name, version in newest.items() if locked.get(name) != version}
        gone = sorted(set(locked) - set(newest) - {"pip"})
        print(f"{'package':<28} {'locked':<16} newest")
        for name, (old, new) in sorted(moved.items()):
            print(f"{name:<28} {old or '(new)':<16} {new}")
        for name in gone:
            print(f"{name:<28} {locked[name]:<16} (no longer installed)")
        if not moved and not gone:
            print("nothing moved: the lock is the newest release set")

        tests = run([str(python), "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider", *args.tests.split()],
                    cwd=REPO)
        summary = tests.stdout.strip().splitlines()[-1:] or ["(no output)"]
        failed = [line for line in tests.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        print(f"\ntests in the newest environment ({args.tests}): {summary[0]}")
        for line in failed:
            print(f"  {line}")
        if args.keep:
            print(f"\nscratch environment kept: {venv} (pip freeze --exclude-editable there to regenerate the lock)")
        print(json.dumps({"bench": "dependency_drift", "value": len(moved) + len(gone), "baseline": len(locked),
                          "unit": "packages", "ratio": round((len(moved) + len(gone)) / max(len(locked), 1), 3),
                          "tests_failed": len(failed)}))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
