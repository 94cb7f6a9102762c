"""A reference check a C++ user can run without Python: `<name>_test.cpp` (built by the Makefile's
`make test`, runtime/makefile.py).

The test embeds one reference input and the JAX output for it, runs the generated Session on the
input, compares (float: |got - expected| <= atol + rtol * |expected|; integers and booleans: equal)
and exits non-zero on any mismatch — the way keras2c and frugally-deep ship a check with a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .build import DEFAULT_CXXFLAGS
from .templates import fill_template

_C_TYPES = {np.dtype("float32"): "float", np.dtype("int32"): "int32_t", np.dtype("int64"): "int64_t",
            np.dtype("bool"): "uint8_t"}  # SOFIE's generated code stores booleans as uint8_t


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = values.ravel()
    if ctype == "double":
        body = ", ".join(repr(float(v)) if np.isfinite(v) else ("NAN" if np.isnan(v) else
                                                                  ("INFINITY" if v > 0 else "-INFINITY"))
                         for v in flat)
    elif ctype == "float":
        body = ", ".join(f"{float(v)!r}f" for v in flat)
    else:
        body = ", ".join(str(int(v)) for v in flat)
    return f"const {ctype} {name}[] = {{{body or '0'}}};\n"


def write_standalone_test(directory: Path, name: str, weight_file: str, input_names: Sequence[str],
                          inputs: Sequence[np.ndarray], output_names: Sequence[str],
                          expected: Sequence[np.ndarray], rtol: float, atol: float,
                          batch: int | None = None, max_batch: int | None = None) -> list[Path]:
    """Write `<name>_test.cpp` into `directory`; return its path.

    batch: for a dynamic-batch model, the batch size of the reference input (`infer` gets it as its
    first argument).
    max_batch: the maximum batch the Session is built for (default: `batch`); a larger one checks a
    Session run below its maximum, as it is used.
    """
    if batch is not None and max_batch is not None and max_batch < batch:
        raise ValueError(f"max_batch {max_batch} is smaller than the reference input's batch {batch}")
    arrays = []
    for input_name, array in zip(input_names, inputs):
        arrays.append(_c_array(_C_TYPES[np.dtype(array.dtype)], f"input_{input_name}", np.asarray(array)))
    for k, array in enumerate(expected):
        arrays.append(_c_array("double", f"expected_{k}", np.asarray(array, dtype=np.float64)))
    source = fill_template("standalone_test.cpp.in", dict(
        name=name,
        cxx_line=f"g++ {' '.join(DEFAULT_CXXFLAGS)} -o {name}_test {name}_test.cpp -lopenblas",
        arrays="".join(arrays),
        rtol=repr(float(rtol)), atol=repr(float(atol)),
        expected_list=", ".join(f"expected_{k}" for k in range(len(expected))),
        expected_sizes=", ".join(str(int(np.asarray(e).size)) for e in expected),
        output_names=", ".join(f'"{n}"' for n in output_names),
        n_outputs=len(expected),
        weight_file=weight_file,
        input_args=", ".join(([f"{batch}"] if batch is not None else []) + [f"input_{n}" for n in input_names]),
        session_args="weights" + (f", {max_batch or batch}" if batch is not None else ""),
    ))
    test_path = Path(directory) / f"{name}_test.cpp"
    test_path.write_text(source)
    return [test_path]
