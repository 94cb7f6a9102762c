#!/usr/bin/env bash
# Installs what jax2sofie needs on Debian/Ubuntu (g++, CMake, OpenBLAS; clang++ for tests/test_warnings.py)
# and jax2sofie itself with its test dependencies into the current Python environment (activate a venv
# first if you like).
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends g++ clang cmake make libopenblas-dev
python3 -m pip install --upgrade pip
python3 -m pip install ".[test]"
