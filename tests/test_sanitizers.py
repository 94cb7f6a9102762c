"""The generated code under AddressSanitizer and UndefinedBehaviorSanitizer: the standalone reference
checks of every catalog case, compiled into one program with -fsanitize=address,undefined, must run
clean (a sanitizer report makes the process fail)."""
from __future__ import annotations

import os

import pytest
from catalog_driver import N_SHARDS, run_catalog_driver, shard

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@pytest.mark.parametrize("index", range(N_SHARDS))
def test_generated_code_of_the_catalog_is_sanitizer_clean(tmp_path, index):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    run_catalog_driver(tmp_path, shard(index), SANITIZE, env)
