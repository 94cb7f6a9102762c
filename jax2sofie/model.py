"""ConvertedModel: what convert() returns — the RModel, writing it out, and checking it for real."""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import sofie

from .emit import emit
from .header_fixes import fix_header
from .ir import Graph
from .rdf_functor import functor_code, functor_filename
from .runtime import CheckReport, TensorSpec, compile_model
from .runtime.c_api import interface, write_c_api
from .runtime.makefile import write_makefile
from .runtime.standalone import write_standalone_test
from .sub_models import embed_sub_models, generate_sub_models
from .trace import Traced

WEIGHT_FORMATS = {
    "text": sofie.Options.kDefault,
    "safetensors": sofie.Options.kSafetensorsWeightFile,
    "embedded": sofie.Options.kNoWeightFile,
}


class ConvertedModel:
    def __init__(self, graph: Graph, rmodel: Any, traced: Traced, batch_param: str | None = None):
        self.graph = graph
        self.rmodel = rmodel  # the sofie.RModel, already generated
        self.traced = traced
        # the name of the symbolic batch size ("bs") of a dynamic-batch model, else None
        self.batch_param = batch_param
        self._compiled: dict[str, Any] = {}  # weight format -> its compiled model
        # the code of the loops' condition and body sub-models, put into every header written
        self.sub_model_code = generate_sub_models(graph)

    @property
    def name(self) -> str:
        return self.graph.name

    # -- writing --------------------------------------------------------------------------------
    def write(self, directory: str | os.PathLike, *, weights: str = "text", test: bool = False,
              force: bool = False, rtol: float = 1e-4, atol: float = 1e-5,
              test_inputs: list[np.ndarray] | None = None, test_max_batch: int | None = None,
              library: bool = False, rdf: bool = False) -> list[Path]:
        """Write `<name>.hxx` and its weights into `directory`; return the paths written.

        weights: "text" (`<name>.dat`, SOFIE's default), "safetensors" (`<name>.safetensors`) or
        "embedded" (in the header, no weight file). The generated Session's default weight-file name
        is the file written next to the header.
        test: also write `<name>_test.cpp` and a Makefile: a C++ check that runs the model on a
        reference input and compares with the JAX output (`make test` exits non-zero on mismatch).
        test_inputs: that reference input (default: random inputs, `example_inputs()`).
        test_max_batch: for a dynamic-batch model, the maximum batch the test's Session is built for
        (default: the reference input's batch).
        library: also write a C API, `<name>_c.h` and `<name>_c.cpp` (with the version script
        `<name>_c.map`), and a Makefile whose `make lib<name>.so` builds it into a shared library
        exporting only the C API (runtime/c_api.py; load it in Python with `jax2sofie.load_library`).
        rdf: also write `<name>_rdf.hxx`, the RDataFrame glue SOFIE_<name>::RDFFunctor (jax2sofie.rdf).
        Files are generated in a temporary folder inside `directory` and moved into place only once
        all are complete, so a failure leaves the directory as it was. Existing files are not
        overwritten unless `force` is given.
        """
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, not {weights!r}")
        # before anything is written: a model the C API cannot describe leaves the directory untouched
        api = interface(self.name, self.graph.inputs, self.graph.outputs, self.batch_param) if library else None
        directory = Path(directory)
        created = [d for d in (directory, *directory.parents) if not d.exists()]  # removed again on failure
        try:
            directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=directory))
        except OSError as exc:
            _remove_empty(created)
            raise OSError(f"cannot write model '{self.name}' into {directory}: {exc.strerror or exc}") from exc
        moved: list[Path] = []  # new files renamed into place
        kept: list[tuple[Path, Path]] = []  # (file, its previous version set aside in the staging folder)
        try:
            self._rmodel_for(weights).output_generated(str(staging / f"{self.name}.hxx"))
            fix_header(staging / f"{self.name}.hxx",
                       {f"tensor_{v.name}": tuple(v.shape) for v in self.graph.constants() if v.is_weight})
            embed_sub_models(staging / f"{self.name}.hxx", self.name, self.sub_model_code)
            weight_file = next((p.name for p in staging.iterdir() if p.suffix != ".hxx"), "")  # "": none
            if rdf:
                (staging / functor_filename(self.name)).write_text(functor_code(self.graph, self.batch_param is not None))
            if test:
                arrays = self._as_inputs(test_inputs) if test_inputs else self.example_inputs()
                write_standalone_test(staging, self.name, weight_file, [v.name for v in self.graph.inputs], arrays,
                                      [v.name for v in self.graph.outputs], self.traced.reference(*arrays),
                                      rtol, atol, batch=self._batch_of(arrays), max_batch=test_max_batch)
            if api is not None:
                write_c_api(staging, dataclasses.replace(api, weight_file=weight_file))
            if test or library:
                write_makefile(staging, self.name, test=test, library=library)
            written = sorted(staging.iterdir())
            clashes = [directory / p.name for p in written if (directory / p.name).exists()]
            if clashes and not force:
                raise FileExistsError(f"not overwriting {', '.join(map(str, clashes))} (pass force=True)")
            backup = staging / ".previous"
            backup.mkdir()
            for path in clashes:  # set aside (same file system: a rename), restored on failure
                os.replace(path, backup / path.name)
                kept.append((path, backup / path.name))
            for path in written:  # each rename is atomic: a file is either absent or complete
                os.replace(path, directory / path.name)
                moved.append(directory / path.name)
            return [directory / p.name for p in written]
        except BaseException:
            for path in moved:  # a failure half way through: take back the new files ...
                path.unlink(missing_ok=True)
            for path, previous in kept:  # ... and put the previous ones back
                os.replace(previous, path)
            shutil.rmtree(staging, ignore_errors=True)
            _remove_empty(created)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _batch_of(self, arrays: list[np.ndarray]) -> int | None:
        """The batch size of example inputs of a dynamic-batch model (dimension marked "bs"), else None."""
        if self.batch_param is None:
            return None
        for graph_input, array in zip(self.graph.inputs, arrays):
            for dim, size in zip(graph_input.shape, array.shape):
                if isinstance(dim, str):
                    return int(size)
        return None

    def _rmodel_for(self, weights: str):
        """The generated RModel for a weight format (a fresh one for each non-default format)."""
        if weights == "text":
            return self.rmodel
        rmodel = emit(self.graph)
        rmodel.generate(WEIGHT_FORMATS[weights])
        return rmodel

    # -- checking -------------------------------------------------------------------------------
    def compile(self, weights: str = "text"):
        """Compile the header generated for a weight format (see write; cached by content) and return
        the runtime CompiledModel."""
        if weights not in self._compiled:
            build_dir = Path(tempfile.mkdtemp(prefix=f"jax2sofie-{self.name}-"))
            paths = self.write(build_dir, weights=weights)
            header = next(p for p in paths if p.suffix == ".hxx")
            weight_file = next((p for p in paths if p.suffix != ".hxx"), None)
            inputs = [TensorSpec(v.name, v.dtype, v.shape) for v in self.graph.inputs]
            outputs = [TensorSpec(v.name, v.dtype, v.shape) for v in self.graph.outputs]
            self._compiled[weights] = compile_model(header, weight_file, self.name, inputs, outputs)
        return self._compiled[weights]

    def example_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """Random inputs of the traced shapes and dtypes (normal floats, small non-negative ints)."""
        rng = np.random.default_rng(seed)
        arrays = []
        for spec in self.traced.input_specs:
            dtype = np.dtype(spec.dtype)
            if dtype == np.bool_:
                arrays.append(rng.random(spec.shape) < 0.5)
            elif np.issubdtype(dtype, np.integer):
                arrays.append(rng.integers(0, 8, spec.shape).astype(dtype))
            else:
                arrays.append(rng.standard_normal(spec.shape).astype(dtype))
        return arrays

    def run(self, *inputs: Any) -> list[np.ndarray]:
        """Run the compiled C++ model; outputs in the order of the flattened JAX outputs."""
        return self.compile().run(*self._as_inputs(inputs))

    def check(self, *inputs: Any, rtol: float = 1e-4, atol: float = 1e-5, weights: str = "text") -> CheckReport:
        """Compile, run the C++ on `inputs` (random ones if none are given) and compare with JAX.
        weights: the weight format of the header compiled ("text", "safetensors", "embedded")."""
        arrays = self._as_inputs(inputs) if inputs else self.example_inputs()
        compiled = self.compile(weights)
        expected = self.traced.reference(*arrays)
        return compiled.check(expected, *arrays, rtol=rtol, atol=atol)

    def _as_inputs(self, inputs) -> list[np.ndarray]:
        if len(inputs) != len(self.traced.input_specs):
            raise TypeError(f"model '{self.name}' takes {len(self.traced.input_specs)} input(s), got {len(inputs)}")
        arrays = []
        for value, graph_input, name in zip(inputs, self.graph.inputs, self.traced.input_names):
            array = np.asarray(value)
            expected = tuple(graph_input.shape)
            if len(array.shape) != len(expected) or any(
                    not isinstance(e, str) and n != e for n, e in zip(array.shape, expected)):
                raise ValueError(f"input '{name}' has shape {array.shape}, the model was converted for "
                                 f"{expected}")
            arrays.append(array.astype(graph_input.dtype, copy=False))
        return arrays

    # -- describing -----------------------------------------------------------------------------
    def summary(self) -> str:
        weights = [v for v in self.graph.constants() if v.is_weight]
        weight_bytes = sum(v.const.nbytes for v in weights)
        ops = ", ".join(f"{op}×{n}" for op, n in sorted(self.graph.op_counts().items()))
        lines = [
            f"model {self.name}",
            "  inputs:  " + ", ".join(f"{v.name} {np.dtype(v.dtype).name}{list(v.shape)}" for v in self.graph.inputs),
            "  outputs: " + ", ".join(f"{v.name} {np.dtype(v.dtype).name}{list(v.shape)}" for v in self.graph.outputs),
            f"  operators: {len(self.graph.nodes)} ({ops})",
            f"  weights: {len(weights)} tensors, {weight_bytes / 1024:.1f} KiB",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ConvertedModel {self.name}: {len(self.graph.nodes)} operators>"


def _remove_empty(directories: list[Path]) -> None:
    """Remove the directories write() created (innermost first), so a failure leaves no trace."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty or not there: something else owns it
