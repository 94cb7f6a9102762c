"""Run a converted model inside ROOT's RDataFrame, locally (also with ROOT.EnableImplicitMT()) or
distributed on a Dask cluster:

    import ROOT, jax2sofie.rdf
    df = ROOT.RDataFrame("events", "data.root")
    df = jax2sofie.rdf.Define(df, "score", model, ["pt", "eta", "phi"])   # scalar columns, in order
    df = jax2sofie.rdf.Define(df, "jet_scores", model, "jet_features")     # one RVec<float> column

`model` is a ConvertedModel or a directory written by `ConvertedModel.write(dir, rdf=True)`. The new
column is an RVec<float> of every output, flattened. The C++ side is SOFIE_<name>::RDFFunctor
(jax2sofie.rdf_functor), declared once per header in ROOT's interpreter: one Session per processing
slot, so it is correct with implicit multi-threading.

Two traps are handled here. ROOT's interpreter resolves the header's BLAS calls (sgemm_) among the
libraries loaded in the process, so the system BLAS the header links with elsewhere is loaded,
globally and with RTLD_DEEPBIND: numpy brings its own OpenBLAS, and once an RDataFrame exists, a
system OpenBLAS loaded without DEEPBIND has its internal calls bound to numpy's copy and returns
garbage (a 2x2 sgemm_ gave [0, 2.3e-41, 0, 0]; the dense layers of a batch of 5 gave one-hot
probabilities). And on a distributed RDataFrame, the header, the glue and the weights are shipped to each
worker (ROOT.RDF.Distributed.DistributeHeaders / DistributeFiles / DistributeCppCode), and the
functor finds the weights next to the shipped header, not at the submitting machine's path.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import ConversionError
from .rdf_functor import functor_filename
from .runtime.cache import cache_dir
from .runtime.toolchain import find_blas, find_compiler

# scalar column types an event's input value may have (converted to float)
_SCALAR_TYPES = {"float", "double", "int", "unsigned int", "Int_t", "UInt_t", "Float_t", "Double_t", "Long64_t",
                 "ULong64_t", "long", "unsigned long", "long long", "unsigned long long", "short", "unsigned short",
                 "Short_t", "UShort_t", "bool", "Bool_t", "char", "Char_t", "unsigned char", "UChar_t",
                 "std::int32_t", "std::uint32_t", "std::int64_t", "std::uint64_t"}
_FLOAT_VECTOR_TYPES = {"ROOT::VecOps::RVec<float>", "ROOT::RVec<float>", "ROOT::RVecF", "RVec<float>",
                       "vector<float>", "std::vector<float>", "ROOT::VecOps::RVec<Float_t>"}

# model name -> (functor header, digest of the model's header and glue) declared in this process:
# two headers of one name share the namespace SOFIE_<name>, so only the first would count
_declared: dict[str, tuple[Path, str]] = {}
_functor_ids = itertools.count()
# ConvertedModel -> (the cache folder, its ModelFiles, every file written there): a model given to Define
# again is not written again while its files are still there (a ConvertedModel does not change once
# converted)
_written: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ModelFiles:
    name: str
    header: Path
    functor: Path
    weights: Path | None  # None: weights embedded in the header


def Define(df: Any, column: str, model: Any, inputs: str | Sequence[str], *, max_batch: int = 64) -> Any:
    """`df` with a new RVec<float> column `column`: the model's outputs for each event, flattened.

    inputs: a list of scalar column names, concatenated in order into the model's one input row, or
    the name of one RVec<float> column holding the input flattened (any number of rows up to
    `max_batch` per event for a model with a dynamic batch, e.g. per-jet scores).
    """
    import ROOT

    files = model_files(model)
    distributed = type(df).__module__.startswith("ROOT._distrdf")
    blas = load_system_blas()
    if distributed:
        # declared here too; shipped to the workers' local directory and declared there
        _register(files)
        ROOT.RDF.Distributed.DistributeHeaders([str(files.header), str(files.functor)])
        if files.weights is not None:
            ROOT.RDF.Distributed.DistributeFiles([str(files.weights)])
    else:
        _declare(files)
    functor_type = getattr(getattr(ROOT, f"SOFIE_{files.name}"), "RDFFunctor")
    columns = _checked_columns(df, inputs, files.name, int(functor_type.kRows), int(functor_type.kRowSize))
    instance = f"j2s_rdf_{files.name}_{os.getpid()}_{next(_functor_ids)}"
    # distributed: the weights by name, found next to the shipped header on each worker
    weights = "" if files.weights is None else (files.weights.name if distributed else str(files.weights))
    slots = 1 if distributed else int(df.GetNSlots())
    code = f'SOFIE_{files.name}::RDFFunctor {instance}("{_cpp_string(weights)}", {slots}, {int(max_batch)});'
    if distributed:
        # the workers load the system BLAS (as load_system_blas does here) before the header's code
        # is compiled there: a static initializer of the declared code runs at declaration
        ROOT.RDF.Distributed.DistributeCppCode(_blas_loader(blas, instance) + code)
    elif not ROOT.gInterpreter.Declare(code):
        raise ConversionError(f"ROOT could not declare the RDataFrame functor of '{files.name}' (see the errors above)")
    return df.Define(column, f"{instance}(rdfslot_, {', '.join(columns)})")


def model_files(model: Any) -> ModelFiles:
    """The written files of `model`: a directory written with rdf=True, or a ConvertedModel (written
    once per process into a cache folder named after its content, runtime/cache.py's cache_dir("rdf");
    written again only if those files were removed)."""
    if isinstance(model, (str, os.PathLike)):
        return _files_in(Path(model))
    from .model import ConvertedModel
    if not isinstance(model, ConvertedModel):
        raise TypeError(f"model must be a ConvertedModel or a directory written by write(dir, rdf=True), "
                        f"not {type(model).__name__}")
    root = cache_dir("rdf")
    written = _written.get(model)
    if written is not None and written[0] == root and all(path.is_file() for path in written[2]):
        return written[1]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=root))
    try:
        model.write(staging, rdf=True)
        digest = hashlib.sha256()
        for path in sorted(staging.iterdir()):
            digest.update(path.name.encode() + path.read_bytes())
        final = root / f"{model.name}-{digest.hexdigest()[:16]}"
        if not final.exists():
            os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = _files_in(final)
    _written[model] = (root, files, list(final.iterdir()))
    return files


def load_system_blas() -> list[str]:
    """Load the BLAS the generated code links with (as `find_blas` finds it), globally, so that ROOT's
    interpreter resolves the header's sgemm_ there, and with RTLD_DEEPBIND, so that the library's
    own internal calls stay inside it (see the module's docstring); return the libraries loaded."""
    loaded = []
    for flag in find_blas(find_compiler()):
        if not flag.startswith("-l"):
            continue
        library = ctypes.util.find_library(flag[2:])
        if library is None:
            raise ConversionError(f"the BLAS the generated code links with ({flag}) has no shared library to load "
                                  "into ROOT's interpreter")
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL | os.RTLD_DEEPBIND | os.RTLD_NOW)
        loaded.append(library)
    return loaded


def _blas_loader(libraries: list[str], instance: str) -> str:
    """C++ that loads `libraries` as load_system_blas does, when it is declared (on each worker)."""
    if not libraries:
        return ""
    opens = " && ".join(f'dlopen("{_cpp_string(lib)}", RTLD_NOW | RTLD_GLOBAL | RTLD_DEEPBIND)' for lib in libraries)
    return (f"#include <dlfcn.h>\n"
            f"static const bool {instance}_blas_loaded = {opens};\n")


def _files_in(directory: Path) -> ModelFiles:
    if not directory.is_dir():
        raise FileNotFoundError(f"no model directory {directory}")
    functors = sorted(directory.glob("*_rdf.hxx"))
    if len(functors) != 1:
        found = ", ".join(p.name for p in functors) or "none"
        raise ConversionError(f"{directory} must hold one <name>_rdf.hxx (found: {found}): write the model with "
                              "ConvertedModel.write(dir, rdf=True) or `jax2sofie convert --rdf`")
    name = functors[0].name[: -len("_rdf.hxx")]
    header = directory / f"{name}.hxx"
    if not header.exists():
        raise ConversionError(f"{directory} has {functors[0].name} but not the model's header {header.name}")
    weights = next((directory / f"{name}{suffix}" for suffix in (".dat", ".safetensors")
                    if (directory / f"{name}{suffix}").exists()), None)
    if weights is None and _reads_weight_file(header.read_text()):
        raise ConversionError(f"the weight file of '{name}' ({name}.dat or {name}.safetensors) is not in {directory}")
    return ModelFiles(name, header.resolve(), functors[0].resolve(), weights.resolve() if weights else None)


def _reads_weight_file(code: str) -> bool:
    """Whether a written header reads a text weight file (neither embedded nor safetensors weights)."""
    return "SafetensorsBlob" not in code and "std::ifstream f;" in code


def _register(files: ModelFiles) -> bool:
    """Record that this model is declared in ROOT's interpreter; False if it already was. Raises if
    another model of the same name was."""
    digest = hashlib.sha256(files.header.read_bytes() + files.functor.read_bytes()).hexdigest()
    if files.name in _declared:
        declared, declared_digest = _declared[files.name]
        if declared_digest != digest:
            raise ConversionError(f"another model named '{files.name}' ({declared}) is already declared in ROOT's "
                                  f"interpreter, and {files.functor} differs from it: convert the models under "
                                  "distinct names (convert(..., name=...))")
        return False
    _declared[files.name] = (files.functor, digest)
    return True


def _declare(files: ModelFiles) -> None:
    """Declare the glue (and through it the model's header) in ROOT's interpreter, once per model."""
    import ROOT

    if _register(files) and not ROOT.gInterpreter.Declare(f'#include "{_cpp_string(str(files.functor))}"'):
        del _declared[files.name]
        raise ConversionError(f"ROOT could not declare {files.functor} (see the interpreter's errors above)")


def _checked_columns(df: Any, inputs: str | Sequence[str], name: str, rows: int, row_size: int) -> list[str]:
    """The column names of the functor's call, after checking their number and types."""
    available = set(str(c) for c in df.GetColumnNames())
    if isinstance(inputs, str):
        if inputs not in available:
            raise ConversionError(f"no column '{inputs}' in the RDataFrame (model '{name}')")
        kind = str(df.GetColumnType(inputs))
        if kind not in _FLOAT_VECTOR_TYPES:
            raise ConversionError(f"column '{inputs}' is {kind}: the model '{name}' takes its input as one "
                                  "RVec<float> column (or a list of scalar columns)")
        return [inputs]
    inputs = list(inputs)
    missing = [c for c in inputs if c not in available]
    if missing:
        raise ConversionError(f"no column {', '.join(repr(c) for c in missing)} in the RDataFrame (model '{name}')")
    if rows > 1:
        raise ConversionError(f"the model '{name}' takes {rows} rows of {row_size} values per call: give one "
                              "RVec<float> column holding them, not scalar columns")
    if len(inputs) != row_size:
        raise ConversionError(f"the model '{name}' takes {row_size} input values per event; {len(inputs)} columns "
                              f"were given ({', '.join(inputs)})")
    for column in inputs:
        kind = str(df.GetColumnType(column))
        if kind not in _SCALAR_TYPES:
            raise ConversionError(f"column '{column}' is {kind}, not a number: the model '{name}' takes scalar "
                                  "columns (or one RVec<float> column)")
    return inputs


def _cpp_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
