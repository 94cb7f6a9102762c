"""The standalone C++ reference check (`<name>_test.cpp`) of every catalog case passes (one driver, one
compile: tests/catalog_driver.py)."""
from __future__ import annotations

import pytest
from catalog_driver import N_SHARDS, run_catalog_driver, shard


@pytest.mark.parametrize("index", range(N_SHARDS))
def test_every_catalog_case_passes_its_standalone_check(tmp_path, index):
    run_catalog_driver(tmp_path, shard(index), ["-O1"])
