"""The standalone C++ reference check (`<name>_test.cpp`) of every catalog case passes (one driver, one
compile: tests/catalog_driver.py)."""
from __future__ import annotations

from catalog_driver import run_catalog_driver


def test_every_catalog_case_passes_its_standalone_check(tmp_path):
    run_catalog_driver(tmp_path, ["-O1"])
