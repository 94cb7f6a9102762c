"""Changes made to the header text SOFIE generates, after `RModel.output_generated` wrote it.

- `Session::infer` ends with `return {output_tensor_y};`: a copy of every output into the returned
  vector, after its own zero-filled allocation. For a large output that doubles the memory traffic
  and, once two multi-megabyte blocks are freed per call, glibc hands them back to the system and
  the next call page-faults them in again (ResNet block at batch 64, a 4 MB output: 14.7 ms per call,
  7.6 ms of it in the network). Moving the outputs into the returned value keeps the API and the
  numbers and removes the copy (7.3 ms). A single output is returned by name: the return value is
  then constructed in place (`return {std::move(y)};` would move, and Clang's -Wpessimizing-move says so).
- Warnings: the header and a program including it compile with `-Wall -Wextra -Werror` (GCC, Clang).
  Where SOFIE writes code that warns, the code is changed where a textual change is exact (see
  `silence_sofie_warnings`).
"""
from __future__ import annotations

import re
from pathlib import Path

# the last statement of infer(), as SOFIE 0.1.0 writes it (RModel::GenerateOutput)
_INFER_RETURN = re.compile(r"^(?P<indent>[ \t]*)return \{(?P<names>output_tensor_\w+(?:,\s*output_tensor_\w+)*)\};$",
                           re.MULTILINE)


def move_outputs_out_of_infer(code: str) -> str:
    """`return {a, b};` -> `return {std::move(a), std::move(b)};` and `return {a};` -> `return a;` in
    infer(); other code unchanged.
    A header without that statement (another SOFIE version) is returned as it is."""
    def moved(match: re.Match) -> str:
        names = [n.strip() for n in match["names"].split(",")]
        if len(names) == 1:
            return f"{match['indent']}return {names[0]};"
        return f"{match['indent']}return {{{', '.join(f'std::move({n})' for n in names)}}};"
    return _INFER_RETURN.sub(moved, code)


# --- Code SOFIE 0.1.0 writes that -Wall -Wextra warns about, changed so that it does not ----------

# doInfer(Session const &session, ...) reads the session only when the model has intermediate tensors
_DO_INFER_SESSION = re.compile(r"\bdoInfer\(Session const &session,")

# Session(...) of a model with a symbolic batch: after allocating the memory pool, `int idx = 0;` counts
# the dynamic intermediate tensors placed in it, one `... offsets[idx++]` line each; with none, idx is unused
_UNUSED_IDX = re.compile(r"^(?P<pool>[ \t]*fDynamicMemoryPool = std::vector<char>\(memory_result\.total_bytes\);\n)"
                         r"[ \t]*int idx = 0;\n(?![^\n]*\[idx\+\+\])", re.MULTILINE)

# ReduceX over a symbolic shape declares `size_t reducedLength_<op> = ...;`, used only by some reductions
_REDUCED_LENGTH = re.compile(r"^[ \t]*size_t (?P<name>reducedLength_\w+) = [^;\n]*;\n", re.MULTILINE)

# the element loops of Cast, Relu, Sigmoid, Elu, ... count with an int: over a symbolic length (a size_t
# expression) that is a signed/unsigned comparison. The index is only used to subscript tensors. (Split
# compares with static_cast<int>(...) and computes with the int index: left alone.)
_INT_ELEMENT_LOOP = re.compile(r"\bfor \(int id = 0; id < (?!static_cast<int>)")


def _drop_unused_reduced_lengths(code: str) -> str:
    def dropped(match: re.Match) -> str:
        return "" if len(re.findall(rf"\b{match['name']}\b", code)) == 1 else match[0]
    return _REDUCED_LENGTH.sub(dropped, code)


def silence_sofie_warnings(code: str) -> str:
    """Change the code SOFIE writes that -Wall -Wextra warns about (unused parameter and variables,
    signed/unsigned loop comparisons) into equivalent code that does not warn."""
    code = _DO_INFER_SESSION.sub("doInfer([[maybe_unused]] Session const &session,", code)
    code = _UNUSED_IDX.sub(r"\g<pool>", code)
    code = _drop_unused_reduced_lengths(code)
    return _INT_ELEMENT_LOOP.sub("for (size_t id = 0; id < ", code)


def fix_header(path: Path) -> None:
    path = Path(path)
    code = path.read_text()
    fixed = silence_sofie_warnings(move_outputs_out_of_infer(code))
    if fixed != code:
        path.write_text(fixed)
