"""jax2sofie.rdf: a converted model scoring a ROOT file in RDataFrame, single-threaded, with implicit
multi-threading and distributed on a Dask LocalCluster, compared with JAX.

Each scenario runs in its own Python process (tests/rdf_scenarios.py): ROOT's implicit
multi-threading is process-wide, and each process imports numpy before ROOT and jax2sofie, the
order in which a JIT-compiled header could pick up numpy's bundled BLAS. The data is written to a
real ROOT file with Snapshot (TTree and RNTuple).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import package_root

import ROOT  # noqa: E402,F401  the "hep" extra (pip install ".[hep]"; install.sh installs it)

SCENARIOS = Path(__file__).with_name("rdf_scenarios.py")


def run_scenario(name: str, tmp_path: Path, timeout: int = 600) -> dict:
    # the jax2sofie this process imports (installed, or a source tree with its built module), never the
    # checkout's sources by accident; the scenario runs in tmp_path, away from the checkout's root
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")])),
               JAX2SOFIE_CACHE_DIR=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, str(SCENARIOS), name, str(tmp_path)], capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"scenario {name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def assert_matches(report: dict) -> None:
    for column, (max_excess, n_events) in report["columns"].items():
        assert n_events > 0, column
        # max over events of |ours - JAX| - (atol + rtol |JAX|): <= 0 is within rtol 1e-4, atol 1e-5
        assert max_excess <= 0.0, (column, max_excess)


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_scalar_columns_single_thread(tmp_path, fmt):
    report = run_scenario(f"scalar_{fmt}", tmp_path)
    assert report["slots"] == 1
    assert_matches(report)


def test_implicit_multithreading_and_rvec_input_of_several_objects(tmp_path):
    """EnableImplicitMT(2): one Session per slot; per-jet scores of a dynamic-batch model from one
    RVec<float> column holding 0..5 jets per event; and a directory written by write(rdf=True)."""
    report = run_scenario("multithreaded", tmp_path)
    assert report["slots"] == 2
    assert report["empty_events"] > 0  # events without jets give an empty column
    assert_matches(report)


def test_distributed_on_a_dask_local_cluster(tmp_path):
    """Two single-thread worker processes whose working directory is not the submitter's: the header,
    the glue and the weights reach them, and the weights are found where they were shipped."""
    report = run_scenario("distributed", tmp_path, timeout=900)
    assert report["worker_cwds_differ"]
    assert_matches(report)


def test_bad_input_gives_clear_errors(tmp_path):
    report = run_scenario("errors", tmp_path)
    assert "takes 4 input values per event; 3 columns were given (a, b, c)" in report["too_few"]
    assert "column 'label' is string" in report["wrong_type"]
    assert "column 'a' is Float_t: the model 'tagger' takes its input as one RVec<float> column" in report["scalar_as_rvec"]
    assert "no column 'nope'" in report["missing_column"]
    # a weight file gone before the event loop runs: the C++ error names it
    assert "weight file" in report["missing_weights"] and "gone.dat" in report["missing_weights"]
    assert "another model named 'tagger'" in report["same_name"] and "distinct names" in report["same_name"]
    assert "must hold one <name>_rdf.hxx" in report["no_functor"]


def test_the_functor_header_compiles_for_cpp_users(tmp_path):
    """<name>_rdf.hxx as a C++ RDataFrame user includes it: compiled with ROOT's interpreter from a
    C++ snippet using DefineSlot (no Python in the loop), numbers as in JAX."""
    report = run_scenario("cpp_define_slot", tmp_path)
    assert_matches(report)


def test_coffea_wrapper_over_uproot_dask_on_a_local_cluster(tmp_path):
    """jax2sofie.coffea.SofieWrapper: jagged jets read with uproot.dask, scored by the model's shared
    library on two worker processes, unflattened per event like the jets."""
    report = run_scenario("coffea_jets", tmp_path, timeout=900)
    assert report["partitions"] > 1
    assert_matches(report)


def test_a_converted_model_is_written_once_per_process(tmp_path, monkeypatch):
    """Define on one ConvertedModel twice reuses its files (not rewritten); they are written again only
    when removed, into the rdf folder of the one cache root (runtime/cache.py)."""
    import jax.numpy as jnp
    import numpy as np

    import jax2sofie
    from jax2sofie import rdf

    monkeypatch.setenv("JAX2SOFIE_CACHE_DIR", str(tmp_path / "cache"))
    def scaled_tanh(params, x):
        return jnp.tanh(x) * params["scale"]

    params = {"scale": np.float32(2.0)}
    model = jax2sofie.convert(scaled_tanh, params, np.zeros((1, 3), np.float32), name="written_once")
    first = rdf.model_files(model)
    assert first.header.parent.parent == (tmp_path / "cache" / "rdf").resolve()
    stamps = {p.name: p.stat().st_mtime_ns for p in first.header.parent.iterdir()}
    assert set(stamps) >= {"written_once.hxx", "written_once_rdf.hxx"}
    root = first.header.parent.parent
    os.utime(first.header, ns=(1, 1))  # a rewrite would give it a new time,
    os.utime(root, ns=(1, 1))  # and writing into a staging folder would change the rdf folder's
    assert rdf.model_files(model) == first
    assert first.header.stat().st_mtime_ns == 1 and root.stat().st_mtime_ns == 1
    # another ConvertedModel of the same function has the same content: the same folder
    again = jax2sofie.convert(scaled_tanh, params, np.zeros((1, 3), np.float32), name="written_once")
    assert rdf.model_files(again).header == first.header
    for path in first.header.parent.iterdir():
        path.unlink()
    first.header.parent.rmdir()
    assert rdf.model_files(model) == first and first.header.is_file() and first.functor.is_file()
