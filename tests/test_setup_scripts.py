"""The set-up a new user runs: the README's first two commands, which `.ci/run` runs as written."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import package_root

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first code block, without their comments."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_commands_as_written():
    commands = readme_commands()
    assert len(commands) == 2, commands
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci, f"{command!r} of README.md is not a line of .ci/run"


def test_scripts_parse():
    for script in ("install.sh", "run", ".ci/run"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_run_without_set_up_says_what_to_do(tmp_path):
    """./run in a checkout that ./install.sh has not set up names the command to run first."""
    (tmp_path / "run").write_bytes((ROOT / "run").read_bytes())
    (tmp_path / "run").chmod(0o755)
    result = subprocess.run([str(tmp_path / "run"), "python", "-V"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "run ./install.sh first" in result.stderr


def test_import_from_a_checkout_names_the_installed_package(tmp_path):
    """A Python started in a checkout's root imports its sources, which have no built native module:
    the error says that the installed package was shadowed, rather than asking to build it."""
    shutil.copytree(ROOT / "jax2sofie", tmp_path / "jax2sofie",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=package_root())
    result = subprocess.run([sys.executable, "-c", "import jax2sofie"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"this is the source tree {tmp_path.resolve() / 'jax2sofie'}" in result.stderr, result.stderr[-3000:]
    assert "imported instead of the installed package" in result.stderr
