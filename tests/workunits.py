"""How the suite is shared between its xdist workers (pyproject.toml: `-n 2 --dist loadfile`).

A test file is one unit of work, run on one worker in its own order, so that a module-scoped
fixture (a fleet, a bus) is made once and tests that build on an earlier one in their file
(test_hostile_commands.py) see it, as in a serial run. The chaos flows (tests/fault and
tests/integration/test_chaos.py) are one unit together: one at a time, as each loads both
cores by itself. Imported only where pytest-xdist is installed (not in .venv-fyers).
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

# Test paths (a file, or a folder ending in /) that share one unit of work, by the unit's name.
SHARED_UNITS = {"tests/fault/": "chaos flows", "tests/integration/test_chaos.py": "chaos flows"}


class FileUnits(LoadFileScheduling):
    """LoadFile scheduling with SHARED_UNITS."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return next((unit for prefix, unit in SHARED_UNITS.items() if path.startswith(prefix)), path)
