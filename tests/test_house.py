"""The house keeps standing: layers and no cycles (import-linter), lint and format (ruff), types
(mypy), and no module using another module's private names. Each runs the tool the way CI does;
a failure prints the tool's own report."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dqnlab"


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _tool(module: str) -> None:
    if shutil.which(module) is None and _run(sys.executable, "-m", module, "--version").returncode != 0:
        pytest.fail(f"{module} is not installed: pip install -e '.[test]'")


def test_import_layers_and_no_cycles():
    _tool("lint-imports") if shutil.which("lint-imports") else pytest.fail("import-linter is not installed")
    done = _run("lint-imports")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff_lint():
    _tool("ruff")
    done = _run(sys.executable, "-m", "ruff", "check", "dqnlab", "tests", "benchmarks", "examples")
    assert done.returncode == 0, done.stdout[-4000:]


def test_ruff_format():
    _tool("ruff")
    done = _run(sys.executable, "-m", "ruff", "format", "--check", "dqnlab", "tests", "benchmarks", "examples")
    assert done.returncode == 0, done.stdout[-4000:]


def test_mypy():
    _tool("mypy")
    done = _run(sys.executable, "-m", "mypy", "dqnlab")
    assert done.returncode == 0, done.stdout[-4000:]


def _private_uses(path: Path) -> list[str]:
    """`from dqnlab.x import _name` and `module._name` where `module` is a dqnlab module imported
    by name: a module's private names are its own."""
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dqnlab"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {alias.name}")
                else:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dqnlab"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {base.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in _private_uses(path)]
    assert not found, "\n".join(found)
