"""Side-by-side benchmark: (A) our generated C++, (B) SOFIE's C++ from the jax2onnx model,
(C) jax.jit on CPU, (D) ONNX Runtime on the jax2onnx model; all on one thread, in one run.

    python benchmarks/run.py            # batches 1, 64, 256; builds O2, v3, native; scale up to 10,000 equations
    python benchmarks/run.py --quick    # batches 1, 64; fewer repeats; scale up to 1,000
    python benchmarks/run.py --quick --models tiny_mlp --batches 1 --builds O2 --no-scale
    python benchmarks/run.py --a-define J2S_MAX_ISA=1       # a macro around our header's #include
    python benchmarks/run.py --a-caps 0,1,2                 # also A alone at each J2S_MAX_ISA level
    python benchmarks/run.py --cell-budget 10               # slow cells (resnet18 at batch 256) get fewer blocks

Writes benchmarks/RESULTS.md (or --out). Needs jax2onnx, onnx and onnxruntime for B and D; without
them those columns say why they are missing. A and B are timed by a C++ loop over Session::infer
(benchmarks/cpp_timer.py), once per build users make of a header (cpp_timer.BUILDS: -O2, -O2
-march=x86-64-v3, -O3 -march=native); C and D from Python, once per model and batch, so they include
their per-call dispatch cost, which is how they are used (the table's "ORT floor" line gives ONNX
Runtime's cost for a trivial model).
"""
from __future__ import annotations

import os

# one thread everywhere, set before numpy/jax/onnxruntime load their thread pools
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
# XLA's CPU matrix products and convolutions run on Eigen's thread pool unless this is false. (A token
# "intra_op_parallelism_threads=1" is often added here: XLA ignores it without "--" and aborts on an
# unknown flag with it, so it is not.)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _openblas_core() -> str | None:
    """The OpenBLAS kernel family for this CPU, from its instruction-set flags. OpenBLAS picks its
    kernels from the CPU model, and on a CPU it does not know (a new model, or a virtual machine that
    hides the model, as on the machine of benchmarks/RESULTS.md) it falls back to its SSE3 kernels
    ("Prescott"), 2-3x slower at sgemm than what the CPU can do, while ONNX Runtime picks its
    kernels from the flags. Same choice for A and B. OPENBLAS_CORETYPE set by the caller wins."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


if "OPENBLAS_CORETYPE" not in os.environ and _openblas_core():
    os.environ["OPENBLAS_CORETYPE"] = _openblas_core()

import argparse  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jax2sofie  # noqa: E402
from jax2sofie.runtime.toolchain import find_compiler  # noqa: E402
from cpp_timer import (BUILD_TITLES, BUILDS, Timed, build_flags, build_timer, compile_command,  # noqa: E402
                       session_bytes, time_headers)
from models import MODELS, deep_chain  # noqa: E402
from report import write_report  # noqa: E402


@dataclass
class Cell:
    """One measured column of one (model, batch): seconds per call, or why there is none."""
    seconds: float | None = None
    error: str | None = None
    minimum: float | None = None  # fastest block (A and B only)
    max_abs_err: float | None = None
    blocks: int | None = None  # blocks timed, where --cell-budget cut them below the repeats


@dataclass
class Row:
    model: str
    family: str
    batch: int
    cells: dict = field(default_factory=dict)  # "C", "D" -> Cell: no C++ build, measured once
    builds: dict = field(default_factory=dict)  # build name ("O2", ...) -> {"A": Cell, "B": Cell}
    caps: dict = field(default_factory=dict)  # J2S_MAX_ISA level -> Cell of A alone (--a-caps)
    compile_o2: float | None = None  # seconds g++ -O2 takes over A's timing program (first batch only)
    compile_o2_error: str | None = None
    convert_ours: float | None = None
    convert_onnx: float | None = None
    memory_ours: tuple | None = None
    memory_sofie: tuple | None = None
    ops_ours: str = ""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0]
    if len(lines) > 1 and line.endswith(":"):  # "uses 2 primitives ...:" -> name them
        line += " " + lines[1]
    return line.replace("|", "/")[:160]


def time_python(call, min_block: float, repeats: int, budget: float = 0.0) -> Cell:
    """Median seconds per call over `repeats` blocks of k calls, each block at least `min_block` s;
    fewer blocks (at least 3) where `repeats` of them would take longer than `budget` s (0: no limit)."""
    call()
    k = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(k):
            call()
        block = time.perf_counter() - t0
        if block >= min_block:
            break
        k *= 2
    cut = budget > 0 and block * repeats > budget
    if cut:
        repeats = max(3, min(repeats, int(budget / block)))
    blocks = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(k):
            call()
        blocks.append((time.perf_counter() - t0) / k)
    return Cell(statistics.median(blocks), blocks=repeats if cut else None)


# how many different inputs each cell feeds in turn, one per call: with one input repeated, branchy code
# (a top-k's comparisons, a sort) runs on a branch predictor trained on that very input and looks faster
# than on a stream of events (edgeconv at batch 1 with -O2: 10.8 us on one input, 13.6 us on 64)
INPUT_SETS = 8

# the macro that caps the instruction set our header's kernels select at run time (0 baseline, 1 AVX2,
# 2 AVX-512); --a-caps builds A once per level
ISA_CAP = "J2S_MAX_ISA"


class Bench:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.builds, self.a_defines = args.builds, args.a_define
        self.min_block = 0.5e-3 if args.quick else 2e-3
        self.repeats = 5 if args.quick else 15
        self.budget = args.cell_budget  # seconds for a cell's timed blocks; 0: no limit
        try:
            import jax2onnx  # noqa: F401
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import sofie.onnx  # noqa: F401
            self.onnx_missing = None
        except ImportError as exc:
            self.onnx_missing = f"not installed: {exc.name}"

    def ort_session(self, path: Path):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def ort_floor(self) -> float | None:
        """ONNX Runtime's per-call cost from Python on a one-Add model of 16 floats."""
        if self.onnx_missing:
            return None
        import onnx
        from onnx import TensorProto, helper
        graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "floor",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
        path = self.work / "floor.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        session, x = self.ort_session(path), np.zeros((1, 16), np.float32)
        return time_python(lambda: session.run(None, {"x": x}), self.min_block, self.repeats).seconds

    def jit_floor(self) -> float:
        """jax.jit's per-call cost from Python on `x + x` over 16 floats: at batch 1, C is mostly this."""
        add = jax.jit(lambda x: x + x)
        x = jax.numpy.zeros((1, 16), jax.numpy.float32)
        return time_python(lambda: add(x).block_until_ready(), self.min_block, self.repeats).seconds

    def timed(self, headers: dict, key: str, defines: tuple | None = None) -> Timed:
        """A header to time; our header ("A") gets the --a-define macros unless `defines` is given."""
        header = headers[key]
        if defines is None:
            defines = self.a_defines if key == "A" else ()
        return Timed(header, header.with_suffix(".dat"), tuple(defines))

    def time_cpp(self, headers: dict, sets: list, ref: np.ndarray, build: str) -> dict:
        """{"A"/"B": Cell} for the headers {"A"/"B": header path} built at `build`, timed in one
        program (alternating); if that program does not build, each alone, so the error lands on the
        one that fails."""
        def measure(keys):
            timed = time_headers([self.timed(headers, k) for k in keys], sets, self.work, build_flags(build),
                                 self.min_block * 1e6, self.repeats, ref.size, self.budget)
            return {k: self.cpp_cell(median, minimum, y, blocks, ref) for k, (median, minimum, y, blocks) in zip(keys, timed)}
        keys = sorted(headers)
        try:
            return measure(keys)
        except Exception as exc:
            if len(keys) == 1:
                return {keys[0]: Cell(error=f"failed: {first_line(exc)}")}
        cells = {}
        for key in keys:
            try:
                cells.update(measure([key]))
            except Exception as exc:
                cells[key] = Cell(error=f"failed: {first_line(exc)}")
        return cells

    def cpp_cell(self, median, minimum, y, blocks, ref) -> Cell:
        return Cell(median, minimum=minimum, max_abs_err=float(np.max(np.abs(y - ref.ravel()))),
                    blocks=blocks if blocks < self.repeats else None)

    def time_caps(self, header: Path, sets: list, ref: np.ndarray) -> dict:
        """{level: Cell} for our header alone, built at --caps-build with J2S_MAX_ISA=level (any
        J2S_MAX_ISA of --a-define is replaced). One program per level: a header's kernels are chosen
        when it is included, so two levels cannot share a program."""
        others = tuple(d for d in self.a_defines if d.split("=", 1)[0] != ISA_CAP)
        cells = {}
        for level in self.args.a_caps:
            try:
                timed = self.timed({"A": header}, "A", others + (f"{ISA_CAP}={level}",))
                [(median, minimum, y, blocks)] = time_headers([timed], sets, self.work, build_flags(self.args.caps_build),
                                                              self.min_block * 1e6, self.repeats, ref.size, self.budget)
                cells[level] = self.cpp_cell(median, minimum, y, blocks, ref)
            except Exception as exc:
                cells[level] = Cell(error=f"failed: {first_line(exc)}")
        return cells

    def compile_seconds(self, header: Path, xs: list) -> float:
        """Seconds `g++ -O2` takes over the timing program of our header alone: what a user's build of
        the header costs (the program around it is a few lines)."""
        _, seconds = build_timer([self.timed({"A": header}, "A")], self.work, build_flags("O2"),
                                 tuple(np.dtype(x.dtype).name for x in xs))
        return seconds

    def run_model(self, bm, built, batch: int, first_batch: bool) -> Row:
        """Row of `bm` at `batch`; `built` is bm.build(), made once for all batches."""
        row = Row(bm.name, bm.family, batch)
        # every runtime is fed INPUT_SETS different inputs in turn (the outputs compared are set 0's)
        sets = [bm.examples(batch, seed=1 + i) for i in range(INPUT_SETS)]
        xs = sets[0]
        variables = built.variables
        apply = jax.jit(built.apply)
        ref = np.asarray(apply(variables, *xs))
        inputs = itertools.cycle(sets)
        row.cells["C"] = time_python(lambda: apply(variables, *next(inputs)).block_until_ready(), self.min_block,
                                     self.repeats, self.budget)

        name = f"{bm.name}_b{batch}"
        out = self.work / name
        out.mkdir(parents=True, exist_ok=True)
        headers, missing = {}, {}  # missing: "A"/"B" -> Cell saying why there is no header to build
        try:  # (A) ours
            t0 = time.perf_counter()
            model = built.convert(xs, name)
            row.convert_ours = time.perf_counter() - t0
            row.ops_ours = " ".join(f"{op}:{n}" for op, n in sorted(model.graph.op_counts().items()))
            paths = [Path(p) for p in model.write(out / "ours", weights="text", force=True)]
            headers["A"] = next(p for p in paths if p.suffix == ".hxx")
            row.memory_ours = session_bytes(headers["A"])
        except Exception as exc:
            missing["A"] = Cell(error=f"not converted: {first_line(exc)}")
            if self.args.verbose:
                traceback.print_exc()
        if self.onnx_missing:
            missing["B"] = row.cells["D"] = Cell(error=self.onnx_missing)
        else:
            headers.update(self.run_onnx(built, sets, ref, name, out, row, missing))
        for build in self.builds:
            row.builds[build] = dict(missing)
            if headers:
                row.builds[build].update(self.time_cpp(headers, sets, ref, build))
        if "A" in headers:
            row.caps = self.time_caps(headers["A"], sets, ref)
            if first_batch:
                try:
                    row.compile_o2 = self.compile_seconds(headers["A"], xs)
                except Exception as exc:
                    row.compile_o2_error = f"failed: {first_line(exc)}"
        return row

    def run_onnx(self, built, sets, ref, name, out, row, missing) -> dict:
        """jax2onnx export, (D) ONNX Runtime timing, and (B) SOFIE's header from the ONNX file; where
        there is no header, missing["B"] says why."""
        import jax2onnx
        import onnx
        import sofie
        onnx_path = out / f"{name}_onnx.onnx"
        xs = sets[0]
        try:
            t0 = time.perf_counter()
            proto = jax2onnx.to_onnx(lambda *xs: built.apply(built.variables, *xs),
                                     [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in xs], model_name=name)
            row.convert_onnx = time.perf_counter() - t0
            onnx.save(proto, str(onnx_path))
        except Exception as exc:
            missing["B"] = row.cells["D"] = Cell(error=f"jax2onnx failed: {first_line(exc)}")
            return {}
        try:  # (D) ONNX Runtime
            session = self.ort_session(onnx_path)
            feeds = [{spec.name: x for spec, x in zip(session.get_inputs(), one)} for one in sets]
            y = session.run(None, feeds[0])[0]
            cycle = itertools.cycle(feeds)
            row.cells["D"] = time_python(lambda: session.run(None, next(cycle)), self.min_block, self.repeats,
                                         self.budget)
            row.cells["D"].max_abs_err = float(np.max(np.abs(y - ref)))
        except Exception as exc:
            # its message names the file: our work folder, not part of why
            row.cells["D"] = Cell(error=f"onnxruntime failed: {first_line(exc).replace(str(onnx_path), onnx_path.name)}")
        try:  # (B) SOFIE from ONNX
            rmodel = sofie.onnx.parse(str(onnx_path))
            rmodel.generate()
            header = out / "sofie" / f"{name}_onnx.hxx"
            header.parent.mkdir(parents=True, exist_ok=True)
            rmodel.output_generated(str(header))
            row.memory_sofie = session_bytes(header)
            return {"B": header}
        except Exception as exc:
            missing["B"] = Cell(error=f"SOFIE failed: {first_line(exc)}")
            if self.args.verbose:
                traceback.print_exc()
            return {}

    def scale(self, sizes) -> list[tuple]:
        """(requested, jaxpr equations, IR nodes, seconds ours, seconds jax2onnx or None) per size."""
        points = []
        for n in sizes:
            fn, params, x = deep_chain(n)
            eqns = len(jax.make_jaxpr(fn)(params, x).jaxpr.eqns)
            t0 = time.perf_counter()
            model = jax2sofie.convert(fn, params, x, name=f"deep_{n}")
            ours = time.perf_counter() - t0
            other = None
            if not self.onnx_missing and n <= 1000:
                import jax2onnx
                t0 = time.perf_counter()
                jax2onnx.to_onnx(lambda x: fn(params, x), [jax.ShapeDtypeStruct(x.shape, x.dtype)])
                other = time.perf_counter() - t0
            points.append((n, eqns, len(model.graph.nodes), ours, other))
            print(f"scale {n}: {eqns} equations, {ours:.2f} s", flush=True)
        return points


def warm_up(bench: Bench) -> None:
    """Convert a trivial model once so that conversion times exclude first-use costs (imports, JAX
    tracing machinery, SOFIE's library load)."""
    fn, params, x = deep_chain(3)
    jax2sofie.convert(fn, params, x, name="warmup")
    if not bench.onnx_missing:
        import jax2onnx
        jax2onnx.to_onnx(lambda x: fn(params, x), [jax.ShapeDtypeStruct(x.shape, x.dtype)])


def _names(text: str, known, what: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _defines(given: list[str]) -> tuple:
    """--a-define values and $J2S_BENCH_A_DEFINES (space-separated), as NAME or NAME=VALUE (a
    leading -D is dropped, so a compiler flag can be pasted)."""
    words = os.environ.get("J2S_BENCH_A_DEFINES", "").split() + list(given or [])
    return tuple(w[2:] if w.startswith("-D") else w for w in words)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches 1 and 64, fewer repeats, scale up to 1,000")
    parser.add_argument("--models", default="", help="comma-separated subset of model names")
    parser.add_argument("--batches", default="", help="comma-separated batch sizes (default 1,64,256)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--work", default="", help="directory for generated code (default: a temporary one)")
    parser.add_argument("--builds", default=",".join(BUILDS),
                        help=f"comma-separated builds of A and B (default and choices: {','.join(BUILDS)}; "
                        "see cpp_timer.BUILDS; empty: none, only our header's -O2 compile time)")
    parser.add_argument("--a-define", action="append", metavar="NAME[=VALUE]",
                        help="a macro defined around our header's #include only (repeatable; also "
                        "$J2S_BENCH_A_DEFINES, space-separated), e.g. J2S_MAX_ISA=1 or =-DJ2S_MAX_ISA=1")
    parser.add_argument("--a-caps", default="", help=f"also time A alone with {ISA_CAP} at each of these "
                        "levels, e.g. 0,1,2 (0 baseline, 1 AVX2, 2 AVX-512)")
    parser.add_argument("--caps-build", default="O2", choices=list(BUILDS), help="the build of --a-caps (default O2)")
    parser.add_argument("--cell-budget", type=float, default=0.0, metavar="SECONDS",
                        help="time each cell's blocks for about this long at most: a model whose calls are slow "
                        "(resnet18 at batch 256) gets fewer blocks, at least 3, instead of the repeats; the "
                        "report lists the cells cut (default 0: no limit)")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.builds = _names(args.builds, list(BUILDS), "build")
    args.a_define = _defines(args.a_define)
    args.a_caps = [int(level) for level in args.a_caps.split(",") if level]
    return args


def _print_row(row: Row) -> None:
    def us(key, cell):
        return f"{key}={cell.seconds * 1e6:.1f}us" if cell.seconds else f"{key}: {cell.error}"
    parts = [us(k, c) for k, c in sorted(row.cells.items())]
    parts += [us(f"{k}@{build}", c) for build, cells in row.builds.items() for k, c in sorted(cells.items())]
    parts += [us(f"A@{ISA_CAP}={level}", c) for level, c in row.caps.items()]
    if row.compile_o2 is not None:
        parts.append(f"compile A -O2 {row.compile_o2:.1f}s")
    print(f"{row.model} b{row.batch}: {', '.join(parts)}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else ([1, 64] if args.quick else [1, 64, 256])
    wanted = set(args.models.split(",")) if args.models else None
    models = [bm for bm in MODELS if wanted is None or bm.name in wanted]
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="j2s-bench-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, work)
        warm_up(bench)
        rows = []
        for bm in models:
            built = bm.build()
            for i, batch in enumerate(batches):
                row = bench.run_model(bm, built, batch, first_batch=i == 0)
                rows.append(row)
                _print_row(row)
        floor, jit_floor = bench.ort_floor(), bench.jit_floor()
        sizes = [] if args.no_scale else ([100, 1000] if args.quick else [100, 1000, 10000])
        scale = bench.scale(sizes)
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "quick": args.quick, "command": _command_line(argv),
        "builds": {build: (compile_command(build), BUILD_TITLES[build]) for build in args.builds},
        "o2_command": compile_command("O2"),
        "compiler": find_compiler().version, "a_defines": args.a_define, "input_sets": INPUT_SETS, "caps": args.a_caps,
        "caps_build": args.caps_build, "minutes": (time.perf_counter() - started) / 60,
        "repeats": bench.repeats, "cell_budget": args.cell_budget, "min_block_ms": bench.min_block * 1e3, "ort_floor": floor, "jit_floor": jit_floor,
        "versions": _versions(), "openblas_core": os.environ.get("OPENBLAS_CORETYPE", "OpenBLAS's own choice"),
    }
    Path(args.out).write_text(write_report(rows, scale, context))
    print(f"wrote {args.out}")
    return 0


def _command_line(argv) -> str:
    """The command that made the report, without --out and --work (local paths, not how to rerun it)."""
    words, kept = list(sys.argv[1:] if argv is None else argv), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--out", "--work"):
            skip = True
        elif not word.startswith(("--out=", "--work=")):
            kept.append(word)
    return " ".join(["python benchmarks/run.py"] + kept)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version
    found = []
    for package in ("jaxlib", "flax", "numpy", "sofie", "jax2onnx", "onnx", "onnxruntime"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (missing)")
    return ", ".join(found)


if __name__ == "__main__":
    sys.exit(main())
