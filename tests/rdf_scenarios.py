"""Scenarios of tests/test_rdf.py, each run in its own process: `python rdf_scenarios.py NAME WORKDIR`.
Prints one line `RESULT {json}`. numpy is imported before ROOT and jax2sofie on purpose."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np  # first, before ROOT: the order that could bind a JIT-compiled header to numpy's BLAS

import jax
import jax.numpy as jnp
import flax.linen as nn

import jax2sofie
import jax2sofie.rdf

RTOL, ATOL = 1e-4, 1e-5
N_EVENTS = 400


class Tagger(nn.Module):
    """A small Flax jet tagger: 4 features -> 16 -> 3 class probabilities, and the arg-max class."""

    @nn.compact
    def __call__(self, x):
        probs = nn.softmax(nn.Dense(3)(nn.tanh(nn.Dense(16)(x))))
        return probs, jnp.argmax(probs, axis=-1)


def tagger(dynamic_batch: bool = False, name: str = "tagger"):
    """The converted Tagger and its JAX reference: events (n, 4) -> (n, 4) = 3 probabilities + class."""
    variables = Tagger().init(jax.random.PRNGKey(7), np.zeros((1, 4), np.float32))
    model = jax2sofie.convert(Tagger().apply, variables, np.zeros((1, 4), np.float32), name=name,
                              dynamic_batch=dynamic_batch)

    def reference(x):
        outputs = Tagger().apply(variables, jnp.asarray(x))
        return np.concatenate([np.asarray(o, np.float32).reshape(len(x), -1) for o in outputs], axis=1)

    return model, reference


def excess(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| - (atol + rtol |ref|): <= 0 when every value is within tolerance."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    if ours.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - ref) - (ATOL + RTOL * np.abs(ref))))


def write_scalar_events(ROOT, path: Path, fmt: str = "ttree") -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N_EVENTS, 4)).astype(np.float32)
    columns = {name: x[:, i].copy() for i, name in enumerate("abcd")}
    columns["event"] = np.arange(N_EVENTS, dtype=np.int64)
    df = ROOT.RDF.FromNumpy(columns)
    if fmt == "rntuple":
        options = ROOT.RDF.RSnapshotOptions()
        options.fOutputFormat = ROOT.RDF.ESnapshotOutputFormat.kRNTuple
        df.Snapshot("events", str(path), ["a", "b", "c", "d", "event"], options)
    else:
        df.Snapshot("events", str(path), ["a", "b", "c", "d", "event"])
    return x


def by_event(columns: dict, name: str) -> np.ndarray:
    order = np.argsort(np.asarray(columns["event"]))
    return np.stack([np.asarray(v, np.float32) for v in columns[name]])[order]


def scalar(workdir: Path, fmt: str) -> dict:
    import ROOT
    data = workdir / f"events_{fmt}.root"
    x = write_scalar_events(ROOT, data, fmt)
    model, reference = tagger()
    df = ROOT.RDataFrame("events", str(data))
    df = jax2sofie.rdf.Define(df, "scores", model, ["a", "b", "c", "d"])
    columns = df.AsNumpy(["scores", "event"])
    return {"slots": int(df.GetNSlots()), "columns": {"scores": (excess(by_event(columns, "scores"), reference(x)), N_EVENTS)}}


def write_jet_events(ROOT, path: Path) -> None:
    """0..5 jets of 4 features per event, deterministic in the event number (5 jets: the dense layers
    run as a matrix product through the BLAS)."""
    ROOT.RDataFrame(N_EVENTS).Define("event", "(Long64_t)rdfentry_").Define("njet", "(int)(event % 6)").Define(
        "jets", "ROOT::RVecF v(njet * 4); for (int i = 0; i < njet * 4; ++i) v[i] = 1.5f * std::sin(0.37f * event + 1.3f * i);"
                " return v;").Snapshot("events", str(path), ["event", "njet", "jets"])


def jet_scores_excess(columns: dict, reference) -> tuple[float, int, int]:
    """(worst excess, events with jets, events without) of the per-jet outputs: all probabilities of
    all jets of the event, then all their classes."""
    worst, empty = -np.inf, 0
    for i in np.argsort(np.asarray(columns["event"])):
        jets = np.asarray(columns["jets"][i], np.float32).reshape(-1, 4)
        ours = np.asarray(columns["jet_scores"][i], np.float32)
        if len(jets) == 0:
            empty += 1
            assert ours.size == 0
            continue
        ref = reference(jets)
        worst = max(worst, excess(ours, np.concatenate([ref[:, :3].ravel(), ref[:, 3]])))
    return worst, len(columns["event"]) - empty, empty


def multithreaded(workdir: Path) -> dict:
    import ROOT
    ROOT.EnableImplicitMT(2)
    data = workdir / "jets.root"
    write_jet_events(ROOT, data)
    model, reference = tagger(dynamic_batch=True, name="jet_tagger")
    written = workdir / "jet_tagger_model"
    model.write(written, rdf=True)
    df = ROOT.RDataFrame("events", str(data))
    df = jax2sofie.rdf.Define(df, "jet_scores", written, "jets", max_batch=8)      # a directory, RVec input
    df = df.Define("first_jet", "ROOT::RVecF v(4, 0.f); for (int i = 0; i < 4 && i < (int)jets.size(); ++i) v[i] = jets[i];"
                                " return v;")
    df = df.Define("a", "first_jet[0]").Define("b", "first_jet[1]").Define("c", "first_jet[2]").Define("d", "first_jet[3]")
    df = jax2sofie.rdf.Define(df, "first_scores", model, ["a", "b", "c", "d"])     # a ConvertedModel, scalars
    columns = df.AsNumpy(["event", "jets", "jet_scores", "first_jet", "first_scores"])
    worst, with_jets, empty = jet_scores_excess(columns, reference)
    return {"slots": int(df.GetNSlots()), "empty_events": empty,
            "columns": {"jet_scores": (worst, with_jets),
                        "first_scores": (excess(by_event(columns, "first_scores"), reference(by_event(columns, "first_jet"))),
                                         N_EVENTS)}}


def distributed(workdir: Path) -> dict:
    import ROOT
    from dask.distributed import Client, LocalCluster
    scalars, jets = workdir / "events.root", workdir / "jets.root"
    x = write_scalar_events(ROOT, scalars)
    write_jet_events(ROOT, jets)
    model, reference = tagger()
    jet_model, jet_reference = tagger(dynamic_batch=True, name="jet_tagger")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        elsewhere = tempfile.mkdtemp(prefix="worker-cwd-", dir=workdir)
        client.run(os.chdir, elsewhere)
        cwds = set(client.run(os.getcwd).values())
        df = ROOT.RDataFrame("events", [str(scalars)], executor=client, npartitions=2)
        scored = jax2sofie.rdf.Define(df, "scores", model, ["a", "b", "c", "d"]).AsNumpy(["scores", "event"])
        df = ROOT.RDataFrame("events", [str(jets)], executor=client, npartitions=2)
        jet_scored = jax2sofie.rdf.Define(df, "jet_scores", jet_model, "jets", max_batch=8).AsNumpy(
            ["event", "jets", "jet_scores"])
    finally:
        client.close()
        cluster.close()
    worst, with_jets, _ = jet_scores_excess(jet_scored, jet_reference)
    return {"worker_cwds_differ": os.getcwd() not in cwds,
            "columns": {"scores": (excess(by_event(scored, "scores"), reference(x)), N_EVENTS),
                        "jet_scores": (worst, with_jets)}}


def errors(workdir: Path) -> dict:
    import ROOT
    data = workdir / "events.root"
    write_scalar_events(ROOT, data)
    model, _ = tagger()
    df = ROOT.RDataFrame("events", str(data)).Define("label", 'std::string("jet")')
    found = {}

    def message(key, call):
        try:
            call()
            found[key] = "no error"
        except Exception as exc:  # the message is what is checked
            found[key] = str(exc)

    message("too_few", lambda: jax2sofie.rdf.Define(df, "y", model, ["a", "b", "c"]))
    message("wrong_type", lambda: jax2sofie.rdf.Define(df, "y", model, ["a", "b", "c", "label"]))
    message("scalar_as_rvec", lambda: jax2sofie.rdf.Define(df, "y", model, "a"))
    message("missing_column", lambda: jax2sofie.rdf.Define(df, "y", model, "nope"))
    gone, _ = tagger(name="gone")
    written = workdir / "gone"
    gone.write(written, rdf=True)
    scored = jax2sofie.rdf.Define(df, "y", written, ["a", "b", "c", "d"])
    (written / "gone.dat").unlink()
    message("missing_weights", lambda: scored.Sum("event").GetValue() + len(scored.AsNumpy(["y"])["y"]))
    (workdir / "no_functor").mkdir()
    model.write(workdir / "no_functor")
    other, _ = tagger(dynamic_batch=True)  # another model under the name of `model`
    message("same_name", lambda: jax2sofie.rdf.Define(df, "y", other, ["a", "b", "c", "d"]))
    message("no_functor", lambda: jax2sofie.rdf.Define(df, "y", workdir / "no_functor", ["a", "b", "c", "d"]))
    return found


def cpp_define_slot(workdir: Path) -> dict:
    """The functor as a C++ user writes it: DefineSlot over a lambda, no Python in the event loop."""
    import ROOT
    data = workdir / "events.root"
    x = write_scalar_events(ROOT, data)
    model, reference = tagger()
    written = workdir / "tagger_model"
    model.write(written, rdf=True)
    jax2sofie.rdf.load_system_blas()
    assert ROOT.gInterpreter.Declare(f'#include "{written / "tagger_rdf.hxx"}"')
    assert ROOT.gInterpreter.Declare('''
std::vector<ROOT::RVecF> j2s_cpp_scores(const std::string &file, const std::string &weights) {
   ROOT::RDataFrame df("events", file);
   SOFIE_tagger::RDFFunctor tagger(weights, df.GetNSlots());
   auto scores = df.DefineSlot("scores", [&tagger](unsigned slot, float a, float b, float c, float d) {
      return tagger(slot, a, b, c, d);
   }, {"a", "b", "c", "d"}).Take<ROOT::RVecF>("scores");
   return *scores;
}''')
    scores = ROOT.j2s_cpp_scores(str(data), str(written / "tagger.dat"))
    ours = np.stack([np.asarray(v, np.float32) for v in scores])  # single-threaded: in file order
    return {"columns": {"scores": (excess(ours, reference(x)), len(ours))}}


SCENARIOS = {
    "scalar_ttree": lambda w: scalar(w, "ttree"),
    "scalar_rntuple": lambda w: scalar(w, "rntuple"),
    "multithreaded": multithreaded,
    "distributed": distributed,
    "errors": errors,
    "cpp_define_slot": cpp_define_slot,
}

if __name__ == "__main__":
    name, workdir = sys.argv[1], Path(sys.argv[2])
    print("RESULT " + json.dumps(SCENARIOS[name](workdir)), flush=True)
