"""Every third-party package the installed code imports is a declared runtime dependency.

(The test extra installs more — momento pulls in PyJWT, for one — so a missing runtime dependency would pass every
other test and still break `make run` on a fresh machine.)
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Loaded by pytest itself (the pytest11 entry point), so pytest is there whenever it is imported.
ONLY_UNDER_PYTEST = ROOT / "src" / "tidings" / "testing" / "pytest_plugin.py"


def _imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "src" / "tidings").rglob("*.py"):
        if path == ONLY_UNDER_PYTEST:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"tidings"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_a_runtime_dependency() -> None:
    declared = {
        _normalized(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    distributions = packages_distributions()

    missing = {
        module: sorted(distributions.get(module, [module]))
        for module in _imported_top_level_modules()
        if not {_normalized(d) for d in distributions.get(module, [module])} & declared
    }

    assert missing == {}
