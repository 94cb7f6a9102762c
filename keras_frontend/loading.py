"""Loading saved Keras models (`.keras`, legacy `.h5`) with errors that say what cannot work and why."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from jax2sofie.errors import ConversionError

SUFFIXES = (".keras", ".h5", ".hdf5")


def check_path(path: Path) -> None:
    """Refuse what is not a loadable Keras 3 file, before loading anything."""
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise ConversionError(
                f"{path} is a TensorFlow SavedModel directory: Keras 3 cannot load SavedModels as models "
                "(only as an opaque TFSMLayer, which runs TensorFlow graphs and cannot be traced). Re-create the "
                "model in Keras and save it with model.save('model.keras'), or export it to .h5 from the "
                "TensorFlow version that wrote it")
        raise ConversionError(f"{path} is a directory, not a .keras or .h5 file")
    if not path.exists():
        raise ConversionError(f"no such file: {path}")
    if path.suffix not in SUFFIXES:
        raise ConversionError(f"{path}: not a Keras model file (expected {', '.join(SUFFIXES)})")


def saved_keras_version(path: Path) -> str | None:
    """The Keras version recorded in a saved file (None if it records none)."""
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json")).get("keras_version")
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ConversionError(f"{path} is not a valid .keras archive ({exc})") from exc
    import h5py

    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version")
    except OSError as exc:
        raise ConversionError(f"{path} is not a valid HDF5 file ({exc})") from exc
    return version.decode() if isinstance(version, bytes) else version


def load(keras, path: Path, safe_mode: bool = True):
    """keras.saving.load_model without compiling, with clear errors."""
    check_path(path)
    version = saved_keras_version(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # Keras raises many types here; each is translated into one clear error
        text = " ".join(str(exc).split())
        text = text if len(text) <= 400 else text[:400] + " ..."  # Keras appends whole configs
        if "safe_mode" in text or "Lambda" in text:
            raise ConversionError(
                f"{path} contains a Lambda layer (or other Python code stored as bytecode): Keras refuses to "
                "load it in safe mode because loading runs arbitrary code. Replace the Lambda by a custom "
                "layer registered with keras.saving.register_keras_serializable, or, if you trust the "
                "file, pass safe_mode=False") from exc
        if version and not str(version).startswith("3."):
            raise ConversionError(f"{path} was saved by Keras {version}, which Keras 3 cannot load: {text}. "
                                  "Load it with the Keras 2 that wrote it and save it again as .h5, or "
                                  "re-create the model in Keras 3") from exc
        if "Unknown layer" in text or "Could not locate" in text:
            raise ConversionError(f"{path} uses a class Keras cannot find: {text}. Import the module that "
                                  "defines it (registered with keras.saving.register_keras_serializable) "
                                  "before converting") from exc
        raise ConversionError(f"Keras cannot load {path}: {text}") from exc
