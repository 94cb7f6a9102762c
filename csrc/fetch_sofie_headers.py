"""Find (or fetch once) the SOFIE C++ headers that match the installed `sofie` package.

The `sofie` wheel ships libSOFIE_core.so but no headers, and the native module of jax2sofie has to
be compiled against exactly the headers that library was built from (the operator classes are
header-only templates whose layout must match the library). So the headers come from the sdist of
the very same version, fetched through pip (which uses the user's own index configuration) and
unpacked once into a cache folder that later builds reuse.

Called by CMakeLists.txt with the build's Python. Prints two lines on success:

    SOFIE_INCLUDE_DIR=<folder that holds SOFIE/RModel.hxx>
    SOFIE_LIBRARY_DIR=<folder of the installed sofie package, holding libSOFIE_core.so>

and exits non-zero with a message on stderr when something fails.

Environment:
    SOFIE_INCLUDE_DIR     use this header folder, fetch nothing
    JAX2SOFIE_CACHE_DIR   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/jax2sofie); the headers
                          of version V go to <root>/sofie-V-headers
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

# the part of the sdist that holds the public headers (SOFIE/core/inc/SOFIE/*.hxx)
_INC_IN_SDIST = ("SOFIE", "core", "inc")
_MARKER = Path("SOFIE") / "RModel.hxx"


class FetchError(RuntimeError):
    pass


def sofie_version() -> str:
    try:
        return importlib.metadata.version("sofie")
    except importlib.metadata.PackageNotFoundError as e:
        raise FetchError(
            f"the 'sofie' package is not installed in the build Python ({sys.executable}); "
            "install it (pip install sofie==0.1.0) or build with build isolation"
        ) from e


def sofie_library_dir() -> Path:
    # find_spec locates the package without importing it (importing would load _sofie for nothing)
    spec = importlib.util.find_spec("sofie")
    if spec is None or not spec.submodule_search_locations:
        raise FetchError(f"the 'sofie' package cannot be found by the build Python ({sys.executable})")
    for loc in spec.submodule_search_locations:
        if (Path(loc) / "libSOFIE_core.so").exists():
            return Path(loc).resolve()
    raise FetchError(f"no libSOFIE_core.so in the 'sofie' package at {list(spec.submodule_search_locations)}")


def cache_root() -> Path:
    env = os.environ.get("JAX2SOFIE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "jax2sofie"


def _download_sdist(version: str, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"sofie=={version}", "-d", str(dest),
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise FetchError(f"'{' '.join(cmd)}' failed (exit {proc.returncode}):\n{tail}")
    archives = [p for p in dest.iterdir() if p.name.startswith("sofie-") and p.suffix in (".gz", ".zip", ".tar")]
    if len(archives) != 1:
        raise FetchError(f"pip download left {sorted(p.name for p in dest.iterdir())} in {dest}, expected one sofie sdist")
    return archives[0]


def _header_members(names):
    """Yield (member name, relative path below SOFIE/core/inc) of the header files in the archive."""
    for name in names:
        parts = PurePosixPath(name).parts
        # <sofie-V>/SOFIE/core/inc/<rel...>
        if len(parts) > 4 and parts[1:4] == _INC_IN_SDIST and not name.endswith("/"):
            rel = PurePosixPath(*parts[4:])
            if ".." in rel.parts or rel.is_absolute():
                raise FetchError(f"unsafe path {name!r} in the sofie sdist")
            yield name, rel


def _unpack_headers(archive: Path, stage: Path) -> int:
    count = 0
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name, rel in _header_members(zf.namelist()):
                out = stage / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                count += 1
    else:
        with tarfile.open(archive) as tf:
            members = {m.name: m for m in tf.getmembers() if m.isfile()}
            for name, rel in _header_members(members):
                out = stage / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(members[name]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                count += 1
    return count


def fetch_headers(version: str, root: Path) -> Path:
    final = root / f"sofie-{version}-headers"
    if (final / _MARKER).exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    # everything happens in a private temporary folder next to the final one; the finished header
    # tree is renamed into place in one step, so a build that is interrupted (or two builds that run
    # at once) never leave a half-filled cache folder behind
    with tempfile.TemporaryDirectory(prefix=f".sofie-{version}-", dir=root) as tmp:
        tmp = Path(tmp)
        archive = _download_sdist(version, tmp / "download")
        stage = tmp / "headers"
        stage.mkdir()
        n = _unpack_headers(archive, stage)
        if n == 0 or not (stage / _MARKER).exists():
            raise FetchError(f"the sdist {archive.name} has no SOFIE/core/inc/SOFIE/RModel.hxx")
        try:
            os.rename(stage, final)
        except OSError:
            # another build won the race (or a broken leftover is in the way)
            if not (final / _MARKER).exists():
                raise
    return final


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--include-dir", default=os.environ.get("SOFIE_INCLUDE_DIR", ""),
                    help="use this header folder instead of fetching (default: $SOFIE_INCLUDE_DIR)")
    args = ap.parse_args(argv)
    try:
        libdir = sofie_library_dir()
        version = sofie_version()
        if args.include_dir:
            inc = Path(args.include_dir).expanduser().resolve()
            if not (inc / _MARKER).exists():
                raise FetchError(f"SOFIE_INCLUDE_DIR={inc} does not contain {_MARKER}")
        else:
            inc = fetch_headers(version, cache_root())
    except (FetchError, OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        print(f"fetch_sofie_headers: {e}", file=sys.stderr)
        return 1
    print(f"SOFIE_VERSION={version}")
    print(f"SOFIE_INCLUDE_DIR={inc}")
    print(f"SOFIE_LIBRARY_DIR={libdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
