"""`python -m keras_frontend REQUEST RESULT`: the child process of keras_frontend.child (JAX backend)."""
from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import numpy as np

from jax2sofie.errors import ConversionError, UnsupportedPrimitivesError


def _main(request_path: str, result_path: str) -> int:
    import jax

    from .conversion import convert

    request = pickle.loads(Path(request_path).read_bytes())
    for module in request["modules"]:
        importlib.import_module(module)
    example = request["example_input"]
    if example is not None:
        example = [jax.ShapeDtypeStruct(x[1], np.dtype(x[2])) if isinstance(x, tuple) else x for x in example]
    try:
        model = convert(request["path"], example, request["input_shape"], request["name"],
                        request["dynamic_batch"], request["strict"], request["safe_mode"], request["input_names"])
    except UnsupportedPrimitivesError as exc:
        result = {"error": ("unsupported", str(exc), [(u.primitive, u.location, u.reason) for u in exc.uses])}
    except ConversionError as exc:
        result = {"error": ("conversion", str(exc), [])}
    else:
        traced = model.traced
        result = {"graph": model.graph, "param_names": traced.param_names, "input_names": traced.input_names,
                  "input_specs": [(tuple(s.shape), np.dtype(s.dtype).str) for s in traced.input_specs],
                  "output_names": traced.output_names, "batch_param": model.batch_param}
    Path(result_path).write_bytes(pickle.dumps(result))
    return 0


sys.exit(_main(*sys.argv[1:3]))
