"""jax2sofie: JAX functions, Flax (linen, nnx) and Keras 3 models -> standalone C++ through TMVA SOFIE.

    import jax2sofie
    m = jax2sofie.convert(fn, params, example_input)   # or convert(nnx_module, example_input)
    m.rmodel           # the sofie.RModel
    m.write("out/")    # out/<name>.hxx + out/<name>.dat
    m.check(x)         # compile, run, compare with JAX
"""
from .convert import build, convert
from .errors import ConversionError, GraphError, LoweringError, UnsupportedPrimitivesError
from .model import ConvertedModel

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "ConvertedModel",
    "GraphError",
    "LoweringError",
    "UnsupportedPrimitivesError",
    "build",
    "convert",
]
