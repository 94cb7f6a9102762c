"""The universe of JAX primitives, found by scanning JAX's own modules for Primitive objects (and
those of Equinox, a library built on JAX whose models carry primitives of its own, where installed).

Used by the coverage test (each primitive is either lowered or declared not supported, never both,
never neither) and by the generated coverage page. Scanning instead of a hand list means a JAX
upgrade that adds a primitive makes that test fail until the primitive is classified.
"""
from __future__ import annotations

import importlib
import pkgutil

import jax._src
from jax.extend.core import Primitive

# JAX's internal modules for accelerators, kernels and infrastructure hold no primitive a model
# traced on the CPU can contain; skipping them keeps the scan fast and free of optional imports.
_SKIPPED_PARTS = ("mosaic", "pallas", "triton", "cuda", "rocm", "tpu", "mlir", "jaxlib", "test", "colocated",
                  "debugger", "profiler", "distributed", "cloud", "clusters", "compilation_cache", "xla_bridge",
                  "gpu", "lib", "export", "sharding", "shard_map")


def known_primitives() -> dict[str, Primitive]:
    found: dict[str, Primitive] = {}
    packages = [(jax._src.__path__, "jax._src.")]
    try:
        import equinox
        packages.append((equinox.__path__, "equinox."))
    except ImportError:
        pass
    for path, prefix in packages:
        for module_info in pkgutil.walk_packages(path, prefix):
            if any(part in module_info.name for part in _SKIPPED_PARTS):
                continue
            try:
                module = importlib.import_module(module_info.name)
            except Exception:  # noqa: BLE001 - optional modules whose dependencies are absent
                continue
            for value in vars(module).values():
                if isinstance(value, Primitive):
                    found.setdefault(value.name, value)
    return found
