"""The layers of DESIGN.md hold (import-linter), and each of the contract's rules catches a wrong import."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

# One wrong import per rule: each layer into the one above it, and siblings declared independent.
WRONG = [
    ("errors", "cli"),
    ("config", "runtime"),
    ("runtime", "metrics"),
    ("metrics", "attention"),
    ("attention", "models"),
    ("models", "data"),
    ("data", "tasks"),
    ("tasks", "train"),
    ("train", "validate"),
    ("validate", "bench"),
    ("evaluate", "cli"),
    ("report", "cli"),
]


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers():
    found = lint(REPO)
    assert found.returncode == 0, found.stdout + found.stderr
    assert "3 kept, 0 broken" in found.stdout


def test_every_rule_catches_a_function_local_import(tmp_path):
    shutil.copytree(REPO / "linctl", tmp_path / "linctl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for lower, higher in WRONG:
        module = tmp_path / "linctl" / lower / "__init__.py"
        module = module if module.is_file() else tmp_path / "linctl" / f"{lower}.py"
        with module.open("a") as fh:
            fh.write(f"\n\ndef _wrong():\n    import linctl.{higher}\n")
    with (tmp_path / "linctl" / "models" / "layers.py").open("a") as fh:
        fh.write("\n\ndef _prompt():\n    import typer\n")
    found = lint(tmp_path)
    assert found.returncode == 1
    for lower, higher in WRONG:
        assert f"linctl.{lower} is not allowed to import linctl.{higher}" in found.stdout
    assert "linctl.models is not allowed to import typer" in found.stdout
