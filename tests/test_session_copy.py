"""Copied and moved Sessions (jax2sofie/header_fixes.py): one C++ program, built with AddressSanitizer and
UndefinedBehaviorSanitizer, copies and moves the Sessions of several written models (text, embedded and
safetensors weights, project-owned convolutions with scratch members, a dynamic batch, while loops
whose Sessions hold their condition's and body's Sessions), destroys the
originals and requires every copy to give the original's outputs bit for bit; a second run infers on
two copies from two threads at once. Plus the refusals of the header parser."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import flax.linen as nn
import jax
import numpy as np
import pytest

import jax2sofie
from jax2sofie import header_fixes
from jax2sofie.header_fixes import HeaderFixError, make_session_copyable
from jax2sofie.runtime import find_blas, find_compiler

# the MLP ends in a softmax: SOFIE keeps its -inf literal in an in-object array, which a pointer member
# points at
from c_api_support import mlp as _mlp, mlp_params as _mlp_params


def _mlp_softmax_over_batch(p, x):
    return jax.nn.softmax(jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"], axis=0)

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
MAX_BATCH, BATCH = 4, 3  # the dynamic-batch Session's maximum batch, and the batch it runs


class _CNN(nn.Module):
    """Padded convolutions: J2S_ConvNHWC with a `mutable` scratch buffer member."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        return nn.Dense(5)(x.reshape(x.shape[0], -1))


def _fixed_point(p, x):
    # a while loop (J2S_While): its Session holds the sub-models' Sessions and the body's output buffers
    def step(state):
        h, _ = state
        new = 0.5 * jax.numpy.tanh(h @ (0.1 * p["w1"][:, :16]) + p["b1"][:16]) + x
        return new, jax.numpy.max(jax.numpy.abs(new - h))

    return jax.lax.while_loop(lambda s: s[1] > 1e-5, step, (x, np.float32(1.0)))[0]


def _models():
    """(model, weights format, batch run) for each Session kind the program exercises."""
    params = _mlp_params()
    x = np.zeros((2, 16), np.float32)
    cnn = _CNN()
    image = np.zeros((2, 8, 8, 2), np.float32)
    variables = cnn.init(jax.random.PRNGKey(0), image)
    return [
        (jax2sofie.convert(_mlp, params, x, name="copy_mlp"), "text", None),
        # a softmax over the batch axis keeps a literal (its max's -inf) as a pointer member
        (jax2sofie.convert(_mlp_softmax_over_batch, params, x, name="copy_mlp_embedded"), "embedded", None),
        (jax2sofie.convert(_mlp, params, x, name="copy_mlp_safetensors"), "safetensors", None),
        (jax2sofie.convert(cnn.apply, variables, image, name="copy_cnn"), "text", None),
        (jax2sofie.convert(cnn.apply, variables, image, name="copy_cnn_dynamic", dynamic_batch=True), "text", BATCH),
        (jax2sofie.convert(_fixed_point, params, x, name="copy_loop"), "text", None),
        # run at a batch below the Session's maximum: the loop copies this call's rows only
        (jax2sofie.convert(_fixed_point, params, x, name="copy_loop_dynamic", dynamic_batch=True), "text", BATCH),
    ]


_PROGRAM = """#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>
{includes}
// each model: its Session, how to make one, how to run it, two inputs and the JAX output for the first
{models}
// exactly the same floats (memcmp: also tells -0 from 0 and compares NaNs)
static bool same(std::vector<float> const &a, std::vector<float> const &b)
{{
   return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}}

static bool close_to_jax(std::vector<float> const &got, std::vector<float> const &jax)
{{
   if (got.size() != jax.size())
      return false;
   for (size_t i = 0; i < got.size(); ++i)
      if (!(std::fabs(got[i] - jax[i]) <= 1e-5f + 1e-4f * std::fabs(jax[i])))
         return false;
   return true;
}}

static int report(char const *model, char const *what, bool ok)
{{
   std::printf("%s %s: %s\\n", model, what, ok ? "OK" : "MISMATCH");
   return ok ? 0 : 1;
}}

// Copies and moves of a Session whose original (and moved-from sources) are destroyed before the copies
// run: a copy that still points into them reads freed memory (AddressSanitizer stops the program).
template <class M>
int check_copies()
{{
   using Session = typename M::Session;
   std::vector<float> expected;
   std::vector<Session> slots(3, M::make()); // one per thread: 3 copies of a temporary Session
   std::unique_ptr<Session> copied, assigned, moved, move_assigned;
   {{
      Session original = M::make();
      expected = M::infer(original, M::x_a);
      slots.push_back(original); // past its capacity: the vector moves its Sessions to a new buffer
      copied = std::make_unique<Session>(original);
      assigned = std::make_unique<Session>(M::make());
      *assigned = original;
      Session source(original);
      moved = std::make_unique<Session>(std::move(source));
      Session source_assigned(original);
      move_assigned = std::make_unique<Session>(M::make());
      *move_assigned = std::move(source_assigned);
   }} // the original and the moved-from Sessions are destroyed here
   int failed = report(M::name, "original vs JAX", close_to_jax(expected, M::jax_a));
   for (size_t i = 0; i < slots.size(); ++i)
      failed += report(M::name, ("slot " + std::to_string(i)).c_str(), same(M::infer(slots[i], M::x_a), expected));
   failed += report(M::name, "copy-constructed", same(M::infer(*copied, M::x_a), expected));
   failed += report(M::name, "copy-assigned", same(M::infer(*assigned, M::x_a), expected));
   failed += report(M::name, "move-constructed", same(M::infer(*moved, M::x_a), expected));
   failed += report(M::name, "move-assigned", same(M::infer(*move_assigned, M::x_a), expected));
   return failed;
}}

// Two copies infer on different inputs from two threads at once: copies that shared their scratch
// memory would mix each other's intermediate tensors.
template <class M>
int check_threads()
{{
   using Session = typename M::Session;
   Session original = M::make();
   std::vector<float> const expected_a = M::infer(original, M::x_a), expected_b = M::infer(original, M::x_b);
   std::vector<Session> copies(2, original);
   std::atomic<int> ready{{0}};
   int wrong[2] = {{0, 0}};
   auto work = [&](int t) {{
      auto const &x = t == 0 ? M::x_a : M::x_b;
      auto const &expected = t == 0 ? expected_a : expected_b;
      ++ready;
      while (ready < 2) {{
      }} // start together
      // 0.2 s (at least 100 calls) each: small models must overlap for long enough to collide
      auto const end = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      for (int i = 0; i < 100 || std::chrono::steady_clock::now() < end; ++i)
         wrong[t] += !same(M::infer(copies[t], x), expected);
   }};
   std::thread first(work, 0), second(work, 1);
   first.join();
   second.join();
   return report(M::name, "two threads", wrong[0] == 0 && wrong[1] == 0);
}}

int main(int argc, char **argv)
{{
   bool const threads = argc > 1 && std::string(argv[1]) == "threads";
   int failed = 0;
{calls}   std::printf("%d failed\\n", failed);
   return failed != 0;
}}
"""

_MODEL = """struct {name} {{
   using Session = SOFIE_{name}::Session;
   static constexpr char const *name = "{name}";
   static Session make() {{ return Session({make_args}); }}
   static std::vector<float> infer(Session &s, std::vector<float> const &x) {{ return s.infer({batch}x.data()); }}
   static const std::vector<float> x_a, x_b, jax_a;
}};
const std::vector<float> {name}::x_a = {{{x_a}}};
const std::vector<float> {name}::x_b = {{{x_b}}};
const std::vector<float> {name}::jax_a = {{{jax_a}}};
"""


def _floats(array: np.ndarray) -> str:
    return ", ".join(f"{v:.8e}f" for v in np.asarray(array, np.float32).ravel())  # 9 digits: exact float32


def _model_code(model, weights: str, batch: int | None, paths: list[Path]) -> str:
    spec = model.traced.input_specs[0]
    shape = (batch, *spec.shape[1:]) if batch else tuple(spec.shape)
    rng = np.random.default_rng(1)
    x_a, x_b = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    weight_file = next((p for p in paths if p.suffix in (".dat", ".safetensors")), None)
    make_args = [f'"{weight_file.parent.name}/{weight_file.name}"' if weights != "embedded" else '""']
    if batch:
        make_args.append(str(MAX_BATCH))
    return _MODEL.format(name=model.name, make_args=", ".join(make_args), batch=f"{batch}, " if batch else "",
                         x_a=_floats(x_a), x_b=_floats(x_b), jax_a=_floats(model.traced.reference(x_a)[0]))


@pytest.fixture(scope="module")
def copy_program(tmp_path_factory):
    """The program, built once with the sanitizers: `run(mode)` runs it ("copies" or "threads"), `headers`
    is the text of the written headers."""
    directory = tmp_path_factory.mktemp("session-copy")
    includes, models, calls, headers = [], [], [], {}
    for model, weights, batch in _models():
        paths = model.write(directory / model.name, weights=weights)
        headers[model.name] = (directory / model.name / f"{model.name}.hxx").read_text()
        includes.append(f'#include "{model.name}/{model.name}.hxx"\n')
        models.append(_model_code(model, weights, batch, paths))
        calls.append(f"   failed += threads ? check_threads<{model.name}>() : check_copies<{model.name}>();\n")
    source = directory / "session_copy.cpp"
    source.write_text(_PROGRAM.format(includes="".join(includes), models="".join(models), calls="".join(calls)))
    compiler = find_compiler()
    build = subprocess.run([*compiler.command, "-std=c++17", *SANITIZE, "-pthread", "-o", str(directory / "session_copy"),
                            str(source), *find_blas(compiler)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1",
               OPENBLAS_NUM_THREADS="1")

    def run(mode: str) -> list[str]:
        done = subprocess.run([str(directory / "session_copy"), mode], cwd=directory, capture_output=True, text=True,
                              env=env, timeout=600)
        assert done.returncode == 0 and "0 failed" in done.stdout, (done.stdout + done.stderr)[-6000:]
        return done.stdout.splitlines()

    return SimpleNamespace(run=run, headers=headers)


def test_the_models_have_every_kind_of_pointer_member(copy_program):
    # what the copies must re-point: pointers into weight vectors, into the intermediate memory pool, into
    # the dynamic pool (set in the constructor), into in-object arrays; and a scratch member to copy
    code = copy_program.headers
    assert "float * tensor_w1 = fTensor_w1.data();" in code["copy_mlp"]
    assert "float* tensor_output = reinterpret_cast<float*>(fIntermediateMemoryPool.data() + " in code["copy_mlp"]
    assert re.search(r"\n   tensor_\w+ = reinterpret_cast<float \*>\(fDynamicMemoryPool\.data\(\) \+ ",
                     code["copy_cnn_dynamic"])
    assert re.search(r"\nfloat \* tensor_literal_\w+ = fTensor_literal_\w+;", code["copy_mlp_embedded"])
    assert "mutable std::vector<float> fJ2S_pad_" in code["copy_cnn"]
    assert re.search(r"\n   SOFIE_copy_loop_dynamic_while_body::Session fJ2S_while_body_\w+;", code["copy_loop_dynamic"])
    # one Session per model, and one per loop's condition and body
    assert all(code[name].count("J2S_RepointAfterCopy(other);") == (3 if "loop" in name else 1) for name in code)


def test_copies_and_moves_outlive_the_original_and_match_it(copy_program):
    lines = copy_program.run("copies")
    assert sum(line.endswith(": OK") for line in lines) == 7 * 9  # per model: JAX, 4 slots, 4 copies/moves
    assert "copy_cnn_dynamic move-assigned: OK" in lines and "copy_mlp_safetensors slot 3: OK" in lines


def test_two_copies_infer_from_two_threads_at_once(copy_program):
    lines = copy_program.run("threads")
    assert sum(line.endswith("two threads: OK") for line in lines) == 7


# -- what the header parser refuses ------------------------------------------------------------------

def _session(members: str, constructor_body: str = "") -> str:
    return ("namespace SOFIE_m {\nstruct Session {\n" + members + "\nSession(std::string = \"\") {\n"
            + constructor_body + "}\n};   // end of Session\n}\n")


def test_pointers_are_repointed_into_their_own_storage():
    code = make_session_copyable(_session(
        "std::vector<float> fTensor_w = std::vector<float>(4);\nfloat * tensor_w = fTensor_w.data();\n"
        "int64_t fTensor_s[2] = { 2, 1};\nint64_t * tensor_s = fTensor_s;\n"
        "float * tensor_d = nullptr;\nstd::vector<char> fDynamicMemoryPool;\nsize_t fBs;\n",
        "   fDynamicMemoryPool = std::vector<char>(8);\n"
        "   tensor_d = reinterpret_cast<float *>(fDynamicMemoryPool.data() + 4);\n"))
    assert ": fTensor_w(other.fTensor_w),\n        fDynamicMemoryPool(other.fDynamicMemoryPool),\n" \
           "        fBs(other.fBs)\n" in code
    assert "std::copy(other.fTensor_s, other.fTensor_s + 2, fTensor_s);" in code
    assert "tensor_w = J2S_SameOffset(from.tensor_w, from.fTensor_w.data(), fTensor_w.data());" in code
    assert "tensor_s = J2S_SameOffset(from.tensor_s, from.fTensor_s, fTensor_s);" in code
    assert "tensor_d = J2S_SameOffset(from.tensor_d, from.fDynamicMemoryPool.data(), fDynamicMemoryPool.data());" in code
    assert "tensor_d = from.tensor_d; from.tensor_d = nullptr;" in code  # after a move
    assert code.index("J2S_RepointAfterMove([[maybe_unused]] Session &from)") < code.index("};   // end of Session")


def test_sub_model_sessions_are_copied_and_moved_by_their_own_operations():
    code = make_session_copyable(_session("SOFIE_m_while_body::Session fJ2S_while_body_y;\n"))
    assert ": fJ2S_while_body_y(other.fJ2S_while_body_y)\n" in code
    assert ": fJ2S_while_body_y(std::move(other.fJ2S_while_body_y))\n" in code
    assert "fJ2S_while_body_y = std::move(other.fJ2S_while_body_y);" in code


@pytest.mark.parametrize("members, body, message", [
    ("std::map<int, int> fCache;", "", "member jax2sofie does not know how to copy: 'std::map<int, int> fCache'"),
    ("float * tensor_x = gGlobal;", "", "pointer tensor_x is set to 'gGlobal'"),
    ("std::vector<float> fA;\nfloat * tensor_x = fA;", "", "pointer tensor_x is set to 'fA'"),  # a vector, no .data()
    ("std::vector<float> fA;\nstd::vector<float> fB;\nfloat * tensor_x = fA.data();", "   tensor_x = fB.data();\n",
     r"pointer tensor_x points into several members \(fA, fB\)"),
    ("float * tensor_x = nullptr;", "   tensor_x = new float[4];\n", "pointer tensor_x is set to 'new float\\[4\\]'"),
])
def test_members_it_cannot_copy_stop_the_write(members, body, message):
    with pytest.raises(HeaderFixError, match=message):
        make_session_copyable(_session(members, body))


def test_a_session_with_its_own_copy_operations_or_none_at_all_is_refused():
    with pytest.raises(HeaderFixError, match="already declares 'Session\\(Session const &other\\)'"):
        make_session_copyable(_session("", "}\nSession(Session const &other) {\n"))
    with pytest.raises(HeaderFixError, match="cannot find the one `struct Session"):
        make_session_copyable("namespace SOFIE_m {\nstruct Session_m {\n};\n}\n")


def test_write_stops_before_writing_a_header_it_cannot_make_copyable(tmp_path, monkeypatch):
    # a SOFIE whose vector members the parser does not recognise: the write fails and leaves nothing
    monkeypatch.setattr(header_fixes, "_VECTOR", re.compile(r"(?!)"))
    model = jax2sofie.convert(_mlp, _mlp_params(), np.zeros((2, 16), np.float32), name="not_copyable")
    with pytest.raises(HeaderFixError, match="member jax2sofie does not know how to copy: 'std::vector<float> fTensor_"):
        model.write(tmp_path / "out")
    assert not (tmp_path / "out").exists()
