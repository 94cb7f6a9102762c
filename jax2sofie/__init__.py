"""jax2sofie: JAX functions, Flax (linen, nnx) and Keras 3 models -> standalone C++ through TMVA SOFIE.

    import jax2sofie
    m = jax2sofie.convert(fn, params, example_input)   # or convert(nnx_module, example_input)
    m.rmodel           # the sofie.RModel
    m.write("out/")    # out/<name>.hxx + out/<name>.dat
    m.check(x)         # compile, run, compare with JAX
    m.write("out/", library=True)   # + a C API; `make libmlp.so` in out/, then:
    run = jax2sofie.load_library("out/libmlp.so"); (y,) = run(x)
"""
from .convert import build, convert
from .library import LibraryModel, load_library
from .errors import ConversionError, GraphError, LoweringError, UnsupportedPrimitivesError
from .model import ConvertedModel

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "ConvertedModel",
    "GraphError",
    "LibraryModel",
    "LoweringError",
    "UnsupportedPrimitivesError",
    "build",
    "convert",
    "load_library",
]
