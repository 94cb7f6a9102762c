#!/usr/bin/env bash
# Installs what jax2sofie needs on Debian/Ubuntu (a C++ compiler, CMake, OpenBLAS; clang++ for
# tests/test_warnings.py) and jax2sofie itself
# with its test dependencies into a Python environment:
#   - the active virtual environment or conda environment, when `python3` is one;
#   - otherwise a virtual environment .venv/ in this checkout, made with `python3` (reused when
#     present). A distribution's own Python (Debian 12's /usr/bin/python3, Ubuntu 23.04+) is
#     "externally managed" (PEP 668): pip refuses to install into it, and asks for a virtual
#     environment instead.
# The environment used is recorded in .jax2sofie-env; `./run CMD` runs CMD in it.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends g++ clang cmake make libopenblas-dev

# a minimal Debian/Ubuntu image has no Python at all
if ! command -v python3 >/dev/null; then
    $SUDO apt-get install -y --no-install-recommends python3 python3-venv
fi

# Which environment `python3` is: "venv" (a virtual environment, active or called by its path),
# "conda" (the active conda environment), or "none" (a system or pyenv Python, to be kept clean);
# and whether pip may install into it.
read -r PY_ENV PY_MANAGED PY_VERSION PY_EXE < <(python3 - <<'EOF'
import os, sys, sysconfig
if sys.prefix != sys.base_prefix:
    env = "venv"
elif os.environ.get("CONDA_PREFIX") and os.path.realpath(os.environ["CONDA_PREFIX"]) == os.path.realpath(sys.prefix):
    env = "conda"
else:
    env = "none"
# PEP 668: the marker file sits in the standard library folder; virtual environments ignore it
managed = env != "venv" and os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
print(env, "yes" if managed else "no", sys.version.split()[0], sys.executable)
EOF
) || { echo "install.sh: $(command -v python3) does not run" >&2; exit 1; }

if [ "$PY_ENV" != none ] && [ "$PY_MANAGED" = no ]; then
    PY="$PY_EXE"
    if [ "$PY_ENV" = venv ]; then kind="virtual environment"; else kind="conda environment"; fi
    echo "install.sh: installing into the $kind $("$PY" -c 'import sys; print(sys.prefix)') (Python $PY_VERSION, $PY)"
else
    if [ "$PY_MANAGED" = yes ]; then
        why="$PY_EXE is externally managed (PEP 668)"
    else
        why="no virtual or conda environment is active"
    fi
    VENV="$PWD/.venv"
    # reused when it works and was made from this python3; remade (--clear) when, say, it was made
    # before python3-venv was installed (no pip) or from another Python
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1 &&
       [ "$(realpath "$VENV/bin/python")" = "$(realpath "$PY_EXE")" ]; then
        echo "install.sh: $why; reusing the virtual environment $VENV"
    else
        # Debian and Ubuntu ship `python -m venv`'s ensurepip in a separate package
        if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            if [ "$(python3 -c 'import sys; print(sys.base_prefix)')" = /usr ]; then
                $SUDO apt-get install -y --no-install-recommends python3-venv "python${PY_VERSION%.*}-venv"
            else
                echo "install.sh: $PY_EXE cannot create a virtual environment (no ensurepip/venv module);" \
                     "activate a virtual or conda environment and run ./install.sh again" >&2
                exit 1
            fi
        fi
        echo "install.sh: $why; creating the virtual environment $VENV with $PY_EXE (Python $PY_VERSION)"
        python3 -m venv --clear "$VENV"
    fi
    PY="$VENV/bin/python"
fi

rm -f .jax2sofie-env  # until the install below succeeds, ./run says to run ./install.sh
"$PY" -m pip install --upgrade pip
"$PY" -m pip install ".[test,hep]"   # hep: ROOT, Dask, coffea (jax2sofie.rdf, jax2sofie.coffea and their tests)

# ./run reads this: the folder whose python, pytest and jax2sofie commands to use
"$PY" -c 'import os, sys; print(os.path.dirname(os.path.abspath(sys.executable)))' > .jax2sofie-env
echo "install.sh: jax2sofie installed for $("$PY" -c 'import sys; print(sys.executable, "(Python", sys.version.split()[0] + ") in", sys.prefix)')"
echo "install.sh: run commands there with ./run, e.g. ./run python examples/flax_mlp.py, ./run pytest -n 2 tests"
