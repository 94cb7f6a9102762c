"""Changes made to the header text SOFIE generates, after `RModel.output_generated` wrote it.

- `Session::infer` ends with `return {output_tensor_y};`: a copy of every output into the returned
  vector, after its own zero-filled allocation. For a large output that doubles the memory traffic
  and, once two multi-megabyte blocks are freed per call, glibc hands them back to the system and
  the next call page-faults them in again (ResNet block at batch 64, a 4 MB output: 14.7 ms per call,
  7.6 ms of it in the network). Moving the outputs into the returned value keeps the API and the
  numbers and removes the copy (7.3 ms). A single output is returned by name: the return value is
  then constructed in place (`return {std::move(y)};` would move, and Clang's -Wpessimizing-move says so).
- The Session gets a copy constructor, copy and move assignments and a move constructor. SOFIE's
  Session keeps raw pointers into its own storage (`float * tensor_w = fTensor_w.data();`,
  intermediate tensors inside `fIntermediateMemoryPool`, dynamic-batch tensors set in the
  constructor inside `fDynamicMemoryPool`, pointers to in-object arrays `int64_t fTensor_s[2]`), so
  the implicit copy leaves the copy's pointers in the original: the copies share scratch memory
  (two threads race) and read freed memory once the original is gone (`std::vector<Session>
  slots(n, Session("m.dat"))`, one per thread, as ROOT's RDataFrame does). The implicit move breaks
  the pointers into the in-object arrays the same way. The header is parsed for every member; a
  member this module does not know how to copy stops the write (HeaderFixError) rather than
  leaving an unsafe Session.
- The project's kernels (and the macros they use) come in `#ifndef J2S_... / #define J2S_...` blocks,
  one per operator, so that operators with the same kernel share one function (the 20 steps of an
  unrolled LSTM: 7 kernels for 196 operators). The blocks after the first of each name are dropped:
  the preprocessor would skip them anyway, and they made the header of such a model 2 MB.
- Weight files are read with checks that name the file and the tensor in the std::runtime_error they
  throw (`checked_weight_reading`). SOFIE's text reader named neither the file nor, for a value that
  is not a number, the tensor (std::stof threw std::invalid_argument("stof")); it read a value cut
  short by a truncated file ("0.12" of "0.1234") as that shorter number and ignored anything after the
  last tensor. Its safetensors reader named the tensor but not the file and did not read the shape,
  so a weight file of another model with the same names and element counts loaded silently.
- `-DJ2S_SEPARATE_INTERMEDIATES` (a checking build, used by the sanitizer tests): SOFIE places every
  intermediate tensor at an offset in one memory pool (`fIntermediateMemoryPool`, and
  `fDynamicMemoryPool` sized for the Session's maximum batch), so a kernel that writes past the end of
  one tensor lands in its neighbour and AddressSanitizer sees nothing. With the macro, doInfer gives
  every pooled intermediate its own heap block of exactly its size (at the batch of the call), filled
  with 0xFF bytes (NaN floats) so that a read before any write shows in the outputs. It allocates on
  every call: for checking, not for production.
- SOFIE's ReduceSum/ReduceMean/ReduceSumSquare over leading or middle axes accumulate into the output
  with a loop over a kept axis innermost (`y[j] += x[i * n + j]`). GCC at -O2 (its "very cheap" cost
  model allows no run-time overlap check) left that loop scalar, since the output might overlap the
  input: the mean over the sequence of an embedding classifier took half of its time there. Each
  iteration writes its own output element and the output never overlaps the input (SOFIE places an
  operator's outputs before it frees its inputs' memory), so the loop gets `#pragma GCC ivdep`
  (`vectorise_sofie_reductions`); the order of the additions into each output is unchanged.
- A float constant written into the header keeps a negative zero: SOFIE prints -0.0f as `-0`, which
  C++ reads as the integer 0 negated, i.e. +0.0f (`1 / where(c, 0.0, -0.0)` gave +inf where JAX gives
  -inf). Such elements of float initializers become `-0.0f` (`keep_negative_zeros`).
- Warnings: the header and a program including it compile with `-Wall -Wextra -Werror` (GCC, Clang).
  Where SOFIE writes code that warns, the code is changed where a textual change is exact (see
  `silence_sofie_warnings`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConversionError


class HeaderFixError(ConversionError):
    """SOFIE's generated header does not have the form a header fix relies on (another SOFIE version?)."""


# -- outputs moved out of infer() ---------------------------------------------------------------

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


# -- copyable Session ---------------------------------------------------------------------------

# `struct Session {` ... `};   // end of Session`, as RModel::GenerateSessionCode writes them (found with
# str.find: an embedded-weights header can be 200 MB long)
_SESSION_BEGIN = "\nstruct Session {\n"
_SESSION_END = "\n};   // end of Session"

# what the scanner of the struct body stops at: the characters that may start a comment, a literal or a
# preprocessor line (skipped whole, so that braces or semicolons inside them count for nothing: the
# project's kernels come in `#if` blocks with macros), parentheses, braces and semicolons
_SPECIAL = re.compile(r"""[(){};/"'#]""")
# a preprocessor line from its `#` to its end, with its backslash-continued lines
_DIRECTIVE_END = re.compile(r"(?:[^\\\n]|\\.|\\\n)*")
_LITERAL = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'""")
# the text before a `{` that opens a member function's body: a parameter list, maybe qualified
_FUNCTION_HEAD_END = re.compile(r"\)\s*(?:(?:const|noexcept|override|final)\s*)*$")

# member declarations SOFIE 0.1.0 writes (the text before any `=`; `mutable`: project-owned
# operators' scratch buffers, which doInfer writes through its const Session&)
_VECTOR = re.compile(r"(?:mutable\s+)?std::vector\s*<\s*[\w:]+\s*>\s+(?P<name>\w+)\s*")
_ARRAY = re.compile(r"(?:mutable\s+)?[\w:]+\s+(?P<name>\w+)\s*\[\s*(?P<length>\d+)\s*\]\s*")
_SCALAR = re.compile(r"(?:mutable\s+)?(?:(?:std::)?(?:size_t|u?int(?:8|16|32|64)_t)|bool|char|int|long|unsigned|"
                     r"float|double)\s+(?P<name>\w+)\s*")
_POINTER = re.compile(r"[\w:]+\s*\*\s*(?P<name>\w+)\s*")
# the Session of a sub-model (a J2S_While loop's condition or body, whose code comes before this
# model's in the header): copied and moved by the copy and move operations its own header fix added
_SUB_SESSION = re.compile(r"SOFIE_\w+::Session\s+(?P<name>\w+)\s*")
# where a pointer member points: `fTensor_w.data()`, `fTensor_s` (an array), `fVec.data() + 12`,
# `reinterpret_cast<float*>(fIntermediateMemoryPool.data() + 256)`, `... + memory_result.offsets[idx++])`
_POINTS_INTO = re.compile(r"(?:reinterpret_cast\s*<[^<>]+>\s*\(\s*)?(?:this->)?(?P<storage>\w+)"
                          r"(?P<data>\s*\.\s*data\s*\(\s*\))?(?:\s*\+\s*[^;]+?)?\s*\)?", re.DOTALL)
# an assignment statement `name = value;` in a member function (not `==`, `<=`, `x.name =`, `p->name =`,
# nor a default argument `std::string name = "m.dat") {`)
_ASSIGNMENT = re.compile(r"(?<![\w.>:])(?:this->)?(?P<name>\w+)\s*=(?!=)\s*(?P<value>[^;{}]*);")
# a copy or move constructor or assignment SOFIE itself would have declared
_OWN_COPY_OR_MOVE = re.compile(r"\s*(?:Session\s*\(\s*(?:const\s+)?Session\b|.*\boperator\s*=(?!=))", re.DOTALL)


@dataclass(frozen=True)
class _Storage:
    """A member that owns its values: a std::vector, an in-object array or a scalar."""
    name: str
    kind: str  # "vector", "array", "scalar" or "session" (a sub-model's Session)
    length: int = 0  # of an array


@dataclass(frozen=True)
class _Pointer:
    """A raw pointer member and the storage member it points into (None: it is always null)."""
    name: str
    storage: _Storage | None


def make_session_copyable(code: str) -> str:
    """Add copy and move operations to the generated `struct Session` that copy (or move) every storage
    member and point every pointer member into the new Session's own storage.

    Raises HeaderFixError when the struct is not found or has a member whose copy is not known (a
    member kind SOFIE 0.1.0 does not write, a pointer whose target is not one of the Session's own
    vectors or arrays), or when the Session already declares copy or move operations."""
    begin, end = _session_bounds(code)
    declarations, functions = _split_members(code, begin, end)
    heads = [function.split("{", 1)[0].strip() for function in functions]
    existing = [head for head in heads if _OWN_COPY_OR_MOVE.match(head)]
    if existing:
        raise HeaderFixError(f"the generated Session already declares {existing[0]!r}: this SOFIE version is not "
                             "the one jax2sofie's header fixes were written for (sofie==0.1.0)")
    storages, pointer_values = _classify(declarations)
    pointers = [_Pointer(name, _pointed_storage(name, values, storages))
                for name, values in _with_assignments(pointer_values, functions).items()]
    return "".join((code[:end], _copy_and_move_code(list(storages.values()), pointers), code[end:]))


def _session_bounds(code: str) -> tuple[int, int]:
    """The body of `struct Session { ... };   // end of Session`: from after the `{` to the closing line."""
    begin = code.find(_SESSION_BEGIN)
    end = code.find(_SESSION_END, begin) if begin >= 0 else -1
    if end < 0 or code.find(_SESSION_BEGIN, end) >= 0:
        raise HeaderFixError("cannot find the one `struct Session { ... };   // end of Session` in the generated "
                             "header: jax2sofie makes the Session safe to copy by rewriting that struct, and "
                             "does not write a header it could not make safe")
    return begin + len(_SESSION_BEGIN), end + 1


def _tokens(code: str, begin: int, end: int):
    """(token, start, end) of each comment ("//" or "/*"), literal ('"' or "'"), parenthesis, brace and
    semicolon of code[begin:end], in order."""
    position, stop = begin, end
    while special := _SPECIAL.search(code, position, stop):
        start, char = special.start(), special.group()
        if char == "/":
            if code.startswith("//", start):
                end = code.find("\n", start, stop)
                end = stop if end < 0 else end
            elif code.startswith("/*", start) and (end := code.find("*/", start + 2, stop)) >= 0:
                end += 2
            else:  # a division
                position = start + 1
                continue
            yield code[start:start + 2], start, end
        elif char == "#":
            line_start = code.rfind("\n", 0, start) + 1
            if code[line_start:start].strip():
                raise HeaderFixError(f"cannot parse the generated Session: a '#' inside a line {code[start:start + 80]!r}")
            end = _DIRECTIVE_END.match(code, start + 1, stop).end()
            yield "//", start, end
        elif char in "\"'":
            literal = _LITERAL.match(code, start, stop)
            if literal is None:
                raise HeaderFixError(f"cannot parse the generated Session: unterminated literal {code[start:start + 80]!r}")
            end = literal.end()
            yield char, start, end
        else:
            end = start + 1
            yield char, start, end
        position = end


def _split_members(code: str, begin: int, end: int) -> tuple[list[str], list[str]]:
    """The struct body code[begin:end] as its member declarations (text without comments and the `;`)
    and its member function definitions (head and body). Scans only comments, literals, parentheses,
    braces and semicolons, and copies an embedded weight's long initializer once, so a header with
    megabytes of embedded weights is split at regular-expression speed."""
    declarations, functions = [], []
    pieces: list[str] = []  # the current member's text, without its comments
    start = begin  # where the current piece starts
    parens = braces = 0
    function_head = False  # the braces being counted are a member function's body
    for text, token_start, token_end in _tokens(code, begin, end):
        if text in ("//", "/*"):
            pieces.append(code[start:token_start])
            start = token_end
        elif text == "(":
            parens += 1
        elif text == ")":
            parens -= 1
        elif text == "{":
            if parens == 0 and braces == 0:
                function_head = bool(_FUNCTION_HEAD_END.search("".join(pieces) + code[start:token_start]))
            braces += 1
        elif text == "}":
            braces -= 1
            if braces == 0 and parens == 0 and function_head:
                pieces.append(code[start:token_end])
                functions.append("".join(pieces))
                pieces, start, function_head = [], token_end, False
        elif text == ";" and parens == 0 and braces == 0:
            pieces.append(code[start:token_start])
            declaration = "".join(pieces)
            if declaration and not declaration.isspace():
                declarations.append(declaration)
            pieces, start = [], token_end
    rest = ("".join(pieces) + code[start:end]).strip()
    if rest or parens or braces:
        raise HeaderFixError(f"cannot parse the generated Session: unbalanced text {rest[:200]!r}")
    return declarations, functions


def _classify(declarations: list[str]) -> tuple[dict[str, _Storage], dict[str, list[str]]]:
    """Storage members by name, and pointer members with the value each is initialised with."""
    storages: dict[str, _Storage] = {}
    pointers: dict[str, list[str]] = {}
    for declaration in declarations:
        equals = declaration.find("=")
        head = (declaration[:equals] if equals >= 0 else declaration).strip()  # an initializer can be 200 MB
        if match := _VECTOR.fullmatch(head):
            storages[match["name"]] = _Storage(match["name"], "vector")
        elif match := _ARRAY.fullmatch(head):
            storages[match["name"]] = _Storage(match["name"], "array", int(match["length"]))
        elif match := _SCALAR.fullmatch(head):
            storages[match["name"]] = _Storage(match["name"], "scalar")
        elif match := _SUB_SESSION.fullmatch(head):
            storages[match["name"]] = _Storage(match["name"], "session")
        elif (match := _POINTER.fullmatch(head)) and equals >= 0:
            pointers[match["name"]] = [declaration[equals + 1:].strip()]
        elif head.startswith(("static ", "using ")):
            continue  # not part of an object: nothing to copy
        else:
            raise HeaderFixError(f"the generated Session has a member jax2sofie does not know how to copy: "
                                 f"{' '.join(declaration[:200].split())!r}; refusing to write a Session whose "
                                 "copies could share or lose its memory")
    return storages, pointers


def _with_assignments(pointer_values: dict[str, list[str]], functions: list[str]) -> dict[str, list[str]]:
    """Each pointer's initial value and the values the member functions assign to it (a dynamic-batch
    Session declares its tensors `= nullptr` and points them into fDynamicMemoryPool in the constructor)."""
    values = {name: list(initial) for name, initial in pointer_values.items()}
    for function in functions:
        for assignment in _ASSIGNMENT.finditer(function):
            if assignment["name"] in values:
                values[assignment["name"]].append(assignment["value"].strip())
    return values


def _pointed_storage(name: str, values: list[str], storages: dict[str, _Storage]) -> _Storage | None:
    """The one storage member that every non-null value of pointer `name` points into."""
    pointed = set()
    for value in values:
        if value == "nullptr":
            continue
        match = _POINTS_INTO.fullmatch(value)
        storage = storages.get(match["storage"]) if match else None
        expected = {"vector": True, "array": False}.get(storage.kind) if storage else None
        if expected is None or bool(match["data"]) != expected:
            raise HeaderFixError(f"the generated Session's pointer {name} is set to {' '.join(value.split())!r}, "
                                 "which is not a position in one of the Session's own vectors or arrays: jax2sofie "
                                 "cannot re-point it in a copy")
        pointed.add(storage)
    if len(pointed) > 1:
        raise HeaderFixError(f"the generated Session's pointer {name} points into several members "
                             f"({', '.join(sorted(s.name for s in pointed))}): jax2sofie cannot re-point it in a copy")
    return pointed.pop() if pointed else None


_COPY_AND_MOVE = """
   // Copies and moves (added by jax2sofie, jax2sofie/header_fixes.py). The pointer members above point
   // into this Session's own vectors and arrays: an implicit copy would leave them pointing into the
   // original (copies sharing scratch memory, reading freed memory once the original is gone). A copy
   // copies every vector, array and scalar and points each pointer at the same offset in its own
   // storage, so copies are independent: one Session per thread.
   Session(Session const &other)
{copy_inits}
   {{
{copy_arrays}      J2S_RepointAfterCopy(other);
   }}

   Session(Session &&other) noexcept
{move_inits}
   {{
{move_ctor_arrays}      J2S_RepointAfterMove(other);
   }}

   Session &operator=(Session const &other)
   {{
      if (this != &other)
         *this = Session(other); // all or nothing: a failed allocation leaves *this as it was
      return *this;
   }}

   Session &operator=(Session &&other) noexcept
   {{
      if (this != &other) {{
{move_assignments}{move_arrays}         J2S_RepointAfterMove(other);
      }}
      return *this;
   }}

private:
   // the position `p` has in the storage at `from`, in the storage at `to` (null stays null)
   template <class T>
   static T *J2S_SameOffset(T *p, void const *from, void *to)
   {{
      if (p == nullptr)
         return nullptr;
      return reinterpret_cast<T *>(static_cast<char *>(to) +
                                   (reinterpret_cast<char const *>(p) - static_cast<char const *>(from)));
   }}

   void J2S_RepointAfterCopy([[maybe_unused]] Session const &from)
   {{
{repoint_copy}   }}

   // A moved std::vector hands its heap buffer over (move construction, and move assignment with
   // std::allocator), so pointers into vectors keep their value; the moved-from Session's are nulled,
   // so that it points into nothing it does not own. Arrays live inside the Session and were copied:
   // pointers into them are re-pointed.
   void J2S_RepointAfterMove([[maybe_unused]] Session &from) noexcept
   {{
{repoint_move}   }}
"""


# storage members that a move hands over (their own move operations), rather than copies
_MOVABLE = ("vector", "session")


def _copy_and_move_code(storages: list[_Storage], pointers: list[_Pointer]) -> str:
    """The C++ of the copy and move operations, inserted at the end of the struct (members in declaration
    order, as the compiler initialises them)."""
    members = [s for s in storages if s.kind != "array"]  # arrays cannot be copied in a mem-initializer
    arrays = [s for s in storages if s.kind == "array"]

    def inits(value: str) -> str:
        lines = [f"{s.name}({value.format(s.name) if s.kind in _MOVABLE else 'other.' + s.name})" for s in members]
        return "      : " + ",\n        ".join(lines) if lines else ""

    def copy_arrays(indent: str) -> str:
        return "".join(f"{indent}std::copy(other.{a.name}, other.{a.name} + {a.length}, {a.name});\n" for a in arrays)

    return _COPY_AND_MOVE.format(
        copy_inits=inits("other.{}"),
        move_inits=inits("std::move(other.{})"),
        copy_arrays=copy_arrays(" " * 6),
        move_ctor_arrays=copy_arrays(" " * 6),
        move_arrays=copy_arrays(" " * 9),
        move_assignments="".join(
            f"         {s.name} = {'std::move(other.' + s.name + ')' if s.kind in _MOVABLE else 'other.' + s.name};\n"
            for s in members),
        repoint_copy="".join(f"      {_repointed(p, moved=False)}\n" for p in pointers),
        repoint_move="".join(f"      {_repointed(p, moved=True)}\n" for p in pointers),
    )


def _repointed(pointer: _Pointer, moved: bool) -> str:
    """The statement that sets `pointer` after its storage was copied (or moved) from `from`."""
    p, storage = pointer.name, pointer.storage
    if storage is None:
        return f"{p} = nullptr; // never points anywhere"
    if moved and storage.kind == "vector":
        return f"{p} = from.{p}; from.{p} = nullptr;"
    base = storage.name + (".data()" if storage.kind == "vector" else "")
    return f"{p} = J2S_SameOffset(from.{p}, from.{base}, {base});"


# -- kernels shared by operators ----------------------------------------------------------------

# a block guarded by a macro of the project's kernels, and the preprocessor lines that nest inside it
_GUARDED_BLOCK = re.compile(r"^#ifndef (?P<guard>J2S_\w+)\n#define (?P=guard)\n", re.MULTILINE)
_CONDITIONAL = re.compile(r"^#\s*(?P<kind>if|ifdef|ifndef|endif)\b.*$", re.MULTILINE)


def drop_repeated_guarded_blocks(code: str) -> str:
    """Remove each `#ifndef J2S_X` / `#define J2S_X` ... `#endif` block whose J2S_X an earlier block of
    the header already defined (the preprocessor would skip it); the first of each stays."""
    seen: set[str] = set()
    pieces, position = [], 0
    for block in _GUARDED_BLOCK.finditer(code):
        if block.start() < position:
            continue  # nested inside a block already dropped
        if block["guard"] not in seen:
            seen.add(block["guard"])
            continue
        depth, end = 1, None
        for line in _CONDITIONAL.finditer(code, block.end()):
            depth += -1 if line["kind"] == "endif" else 1
            if depth == 0:
                end = line.end() + 1
                break
        if end is None:
            raise HeaderFixError(f"cannot parse the generated header: no #endif closes #ifndef {block['guard']}")
        pieces.append(code[position:block.start()])
        position = end
    return "".join(pieces) + code[position:] if pieces else code

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


_DO_INFER_DEFINITION = re.compile(r"^inline void doInfer\(\[\[maybe_unused\]\] Session const &session, (?P<params>[^)]*)\) \{\n",
                                  re.MULTILINE)


def _mark_unused_do_infer_parameters(code: str) -> str:
    """[[maybe_unused]] on the parameters doInfer's body never reads (a model whose outputs are
    constants does not read its input; a static part of a dynamic-batch model not its size)."""
    match = _DO_INFER_DEFINITION.search(code)
    if match is None:
        return code
    end = code.find("\n}\n", match.end())
    body = code[match.end():end if end >= 0 else len(code)]
    params = []
    for param in match["params"].split(","):
        name = re.findall(r"\w+", param)[-1] if re.findall(r"\w+", param) else ""
        unused = name and "maybe_unused" not in param and not re.search(rf"\b{name}\b", body)
        params.append(f"[[maybe_unused]] {param.strip()}" if unused else param.strip())
    if not any("[[maybe_unused]]" in param for param in params):
        return code
    signature = f"inline void doInfer([[maybe_unused]] Session const &session, {', '.join(params)}) {{\n"
    return code[:match.start()] + signature + code[match.end():]


def silence_sofie_warnings(code: str) -> str:
    """Change the code SOFIE writes that -Wall -Wextra warns about (unused parameter and variables,
    signed/unsigned loop comparisons) into equivalent code that does not warn."""
    code = _DO_INFER_SESSION.sub("doInfer([[maybe_unused]] Session const &session,", code)
    code = _mark_unused_do_infer_parameters(code)
    code = _UNUSED_IDX.sub(r"\g<pool>", code)
    code = _drop_unused_reduced_lengths(code)
    return _INT_ELEMENT_LOOP.sub("for (size_t id = 0; id < ", code)


# -- SOFIE's reductions over leading and middle axes, vectorised at -O2 --------------------------

_IVDEP = "#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC ivdep\n#endif\n"
# RModel's Reduce (ROperator_Reduce::Generate), general case: the innermost loop runs over a kept axis
# of output stride 1, each iteration adding one input value into its own output element
_REDUCE_INNER_KEPT = re.compile(
    r"^(?P<loop>[ \t]*for \(size_t (?P<i>i_\d+) = 0; (?P=i) < \([^()\n]*\); (?P=i)\+\+\) \{\n)"
    r"(?P<body>[ \t]*size_t (?P<o>outputIndex_\d+) = \w+ \+ (?P=i) \* \(1\);\n"
    r"[ \t]*tensor_\w+\[(?P=o)\] \+= tensor_(?P<x>\w+)\[inputIndex\](?: \* tensor_(?P=x)\[inputIndex\])?;\n"
    r"[ \t]*inputIndex\+\+;\n)", re.MULTILINE)
# the same operator reducing the leading axes: y[j] += x[i * n + j] over the output's elements j
_REDUCE_FIRST = re.compile(
    r"^(?P<loop>[ \t]*for \(size_t j = 0; j < (?P<n>\w+); j\+\+\) \{\n)"
    r"(?P<body>[ \t]*tensor_\w+\[j\] \+= tensor_(?P<x>\w+)\[i \* (?P=n) \+ j\]"
    r"(?: \* tensor_(?P=x)\[i \* (?P=n) \+ j\])?;\n)", re.MULTILINE)


def vectorise_sofie_reductions(code: str) -> str:
    """`#pragma GCC ivdep` before the innermost loop of SOFIE's sum-like reductions whose iterations
    each update their own output element (see the module's docstring)."""
    def with_ivdep(match: re.Match) -> str:
        return _IVDEP + match[0]
    return _REDUCE_FIRST.sub(with_ivdep, _REDUCE_INNER_KEPT.sub(with_ivdep, code))


# -- a checking build with one allocation per intermediate tensor --------------------------------

# an intermediate tensor SOFIE places in the static pool (RModel::AllocateIntermediateMemory)
_POOLED_TENSOR = re.compile(r"^ // Allocating memory for intermediate tensor (?P<name>\w+) with size (?P<bytes>\d+) bytes\n"
                            r"[\w:]+\* tensor_(?P=name) = reinterpret_cast<[\w:]+\*>\(fIntermediateMemoryPool\.data\(\) \+ "
                            r"\d+\);$", re.MULTILINE)
# an intermediate tensor of a dynamic-batch model, placed in the dynamic pool by the Session's constructor
# (RModel::GenerateDynamicTensorInfo): its size in bytes is an expression of the shape parameters (`bs`)
_DYNAMIC_TENSOR = re.compile(r"^[ \t]*dynamicTensorInfos\.push_back\( \{\d+, \d+, (?P<bytes>[^;\n]*) \}\);"
                             r" // tensor_(?P<name>\w+)$", re.MULTILINE)
# doInfer's local name for a Session member (RModel::GenerateSessionCode)
_SESSION_ALIAS = re.compile(r"^    auto &tensor_(?P<name>\w+) = session\.tensor_(?P=name);\n", re.MULTILINE)


def separate_intermediates_option(code: str) -> str:
    """Make doInfer, when the header is built with -DJ2S_SEPARATE_INTERMEDIATES, allocate every pooled
    intermediate tensor on its own (see the module's docstring); without the macro nothing changes.

    A dynamic tensor's size expression uses the shape parameters, which doInfer has as its own
    parameters: the block is sized for the batch of the call, not the Session's maximum."""
    sizes = {m["name"]: m["bytes"] for m in _POOLED_TENSOR.finditer(code)}
    sizes.update((m["name"], m["bytes"]) for m in _DYNAMIC_TENSOR.finditer(code))
    if not sizes:
        return code

    def separate(match: re.Match) -> str:
        name = match["name"]
        if name not in sizes:
            return match[0]  # a weight, a Session-owned scratch buffer: not in a pool
        return (f"#ifdef J2S_SEPARATE_INTERMEDIATES\n"
                f"    std::vector<char> j2s_separate_{name}({sizes[name]}, static_cast<char>(0xFF));\n"
                f"    auto const tensor_{name} = reinterpret_cast<decltype(session.tensor_{name})>"
                f"(j2s_separate_{name}.data());\n"
                f"#else\n{match[0]}#endif\n")
    return _SESSION_ALIAS.sub(separate, code)


# -- weight files read with checks ----------------------------------------------------------------

# the Session constructor's reads, as RModel::GenerateSessionCode writes them: text `.dat` and safetensors
_TEXT_READ = re.compile(r"^(?P<indent>[ \t]*)ReadTensorFromStream\(f, (?P<target>tensor_\w+), \"(?P<name>tensor_\w+)\", "
                        r"(?P<length>\d+)\);\n", re.MULTILINE)
_TEXT_CLOSE = re.compile(r"^(?P<indent>[ \t]*)f\.close\(\);\n", re.MULTILINE)
_SAFETENSORS_READ = re.compile(r"^(?P<indent>[ \t]*)sofie_weights_reader\.Read\(\"(?P<name>tensor_\w+)\", \w+, \d+, "
                               r"\"\w+\"\);\n", re.MULTILINE)
# the constructor from a file name, which loads the file and delegates to the one from a blob
_SAFETENSORS_FROM_FILE = re.compile(r"(?P<head>^Session\(std::string filename =\"[^\"\n]*\"(?:,\s*size_t bs = 0)?\))\n"
                                    r"(?P<init>\s*: Session\(SafetensorsBlob\{LoadWeightsFromFile\(filename\)\}(?:, bs)?\)) \{\}",
                                    re.MULTILINE)

# SOFIE's safetensors header scanner skips each tensor's "shape": it is kept (SafetensorsTensorInfo::fShape)
_SAFETENSORS_SHAPE_PATCHES = [
    ("   std::string fDtype;\n};", "   std::string fDtype;\n   std::vector<std::uint64_t> fShape; // added by jax2sofie\n};"),
    ("      std::string dtype;\n      std::uint64_t begin = 0;",
     "      std::string dtype;\n      std::vector<std::uint64_t> shape;\n      std::uint64_t begin = 0;"),
    ("            } else if (member == \"data_offsets\") {",
     "            } else if (member == \"shape\") { // read by jax2sofie\n"
     "               Expect('[');\n"
     "               SkipWhitespace();\n"
     "               if (!TryConsume(']')) {\n"
     "                  while (true) {\n"
     "                     SkipWhitespace();\n"
     "                     shape.push_back(ParseUInt());\n"
     "                     SkipWhitespace();\n"
     "                     if (TryConsume(']'))\n"
     "                        break;\n"
     "                     Expect(',');\n"
     "                  }\n"
     "               }\n"
     "            } else if (member == \"data_offsets\") {"),
    ("SafetensorsTensorInfo{fDataBegin + begin, fDataBegin + end, dtype}",
     "SafetensorsTensorInfo{fDataBegin + begin, fDataBegin + end, dtype, shape}"),
    ("private:\n   const char *fData;\n   std::size_t fSize;",
     "   // the shape the file gives tensor `name` (added by jax2sofie); null when the tensor is not in it\n"
     "   const std::vector<std::uint64_t> *J2S_Shape(const std::string &name) const\n"
     "   {\n"
     "      auto it = fTensors.find(name);\n"
     "      return it == fTensors.end() ? nullptr : &it->second.fShape;\n"
     "   }\n\n"
     "private:\n   const char *fData;\n   std::size_t fSize;"),
]

_WEIGHT_HELPERS = r"""
// --- Weight reading with checks (added by jax2sofie, jax2sofie/header_fixes.py): every error is a
// std::runtime_error naming the weight file and the tensor ---
[[noreturn]] inline void J2S_WeightError(std::string const &file, std::string const &tensor, std::string const &what)
{
   throw std::runtime_error("jax2sofie: weight file '" + file + "', tensor " + tensor + ": " + what);
}

// One tensor of SOFIE's text weight file: `name length` on a line, then `length` numbers. Unlike
// SOFIE's ReadTensorFromStream, a value must be a whole number ("1.5x" is refused, not read as 1.5)
// and the file must go on after it: a value at the very end of the file, with no newline after it,
// was cut short by a truncation ("0.12" of "0.1234"; the files SOFIE writes end with a newline).
template <class T>
void J2S_ReadTensorFromStream(std::istream &is, std::string const &file, T &target, std::string const &name,
                              std::size_t expectedLength)
{
   std::string found, token;
   if (!(is >> found))
      J2S_WeightError(file, name, "the file ends before this tensor (truncated?)");
   if (found != name)
      J2S_WeightError(file, name, "found tensor '" + found.substr(0, 80) +
                                     "' in its place: a weight file of another model, or a damaged one");
   if (!(is >> token))
      J2S_WeightError(file, name, "the file ends before the tensor's length (truncated?)");
   char *end = nullptr;
   errno = 0;
   const unsigned long long length = std::strtoull(token.c_str(), &end, 10);
   if (token.empty() || token[0] == '-' || *end != '\0' || errno == ERANGE)
      J2S_WeightError(file, name, "its length '" + token.substr(0, 80) + "' is not a number");
   if (length != expectedLength)
      J2S_WeightError(file, name, "the file holds " + token + " values, the model needs " +
                                     std::to_string(expectedLength) + ": a weight file of another model?");
   for (std::size_t i = 0; i < expectedLength; ++i) {
      if (!(is >> token))
         J2S_WeightError(file, name, "the file ends after " + std::to_string(i) + " of its " +
                                        std::to_string(expectedLength) + " values (truncated?)");
      if (is.eof())
         J2S_WeightError(file, name, "value " + std::to_string(i) + " '" + token.substr(0, 80) +
                                        "' ends the file with no newline after it: the file is truncated");
      float value;
      if (token == "inf" || token == "-inf" || token == "nan") {
         value = token == "nan" ? std::numeric_limits<float>::quiet_NaN()
                                : (token[0] == '-' ? -1 : 1) * std::numeric_limits<float>::infinity();
      } else {
         errno = 0;
         value = std::strtof(token.c_str(), &end);
         // ERANGE with a finite result is an underflow (a subnormal value): kept, as std::stof did not
         if (end == token.c_str() || *end != '\0' || (errno == ERANGE && std::isinf(value)))
            J2S_WeightError(file, name, "value " + std::to_string(i) + " '" + token.substr(0, 80) +
                                           "' is not a float32 number");
      }
      target[i] = value;
   }
}

// After the model's last tensor only white space may follow: more is a weight file of another model
inline void J2S_ExpectEndOfWeights(std::istream &is, std::string const &file, std::string const &last)
{
   std::string extra;
   if (is >> extra)
      J2S_WeightError(file, last, "the file goes on after this tensor, the model's last, with '" +
                                     extra.substr(0, 80) + "': a weight file of another model?");
}

// The shape a safetensors file gives a tensor must be the model's (its byte size is checked by SOFIE).
// A template: text-weight headers have no SafetensorsReader.
template <class SafetensorsReader>
void J2S_CheckSafetensorsShape(SafetensorsReader const &reader, std::string const &name,
                                      std::vector<std::uint64_t> const &expected)
{
   auto text = [](std::vector<std::uint64_t> const &shape) {
      std::string t = "(";
      for (std::size_t i = 0; i < shape.size(); ++i)
         t += (i ? ", " : "") + std::to_string(shape[i]);
      return t + (shape.size() == 1 ? ",)" : ")");
   };
   const std::vector<std::uint64_t> *shape = reader.J2S_Shape(name);
   if (shape != nullptr && *shape != expected)
      throw std::runtime_error("tensor " + name + " has shape " + text(*shape) + " in the file, the model needs " +
                               text(expected) + ": a weight file of another model?");
}
"""


# an embedded weight, `std::vector<float> fTensor_w = { 0.1, ... };` (RModel::GenerateInitializedTensorInfo)
_EMBEDDED_WEIGHT = re.compile(r"^std::vector<[\w:]+> f(?P<name>Tensor_\w+) = \{", re.MULTILINE)


def _check_embedded_weights(code: str, weight_shapes: dict[str, tuple[int, ...]]) -> None:
    """An embedded weight's initializer must hold exactly its shape's number of values: a shorter one
    would compile (the vector is as long as its list) and the kernels would read past its end."""
    for match in _EMBEDDED_WEIGHT.finditer(code):
        name = "t" + match["name"][1:]  # fTensor_w -> tensor_w
        if name not in weight_shapes:
            continue
        end = code.find("};", match.end())
        values = code[match.end():end]
        count = values.count(",") + 1 if values.strip() else 0
        expected = int(np.prod(weight_shapes[name], dtype=np.int64))
        if count != expected:
            raise HeaderFixError(f"the generated header embeds {count} values for weight {name}, whose shape "
                                 f"{tuple(weight_shapes[name])} has {expected}: not writing a Session that would "
                                 "read past its weights")


def checked_weight_reading(code: str, weight_shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """Read the weight files with the checks of _WEIGHT_HELPERS; `weight_shapes` (the weights' shapes by
    their names in the header, `tensor_<name>`) adds a check of each safetensors tensor's shape."""
    text = _TEXT_READ.search(code) is not None
    safetensors = _SAFETENSORS_READ.search(code) is not None
    if not (text or safetensors):
        _check_embedded_weights(code, weight_shapes or {})
        return code  # weights embedded in the header (checked when written), or none
    declaration = code.find("\nstruct Session;\n")
    if declaration < 0:
        raise HeaderFixError("cannot find `struct Session;` in the generated header, before which jax2sofie "
                             "adds the checked weight reading")
    if safetensors:
        for old, new in _SAFETENSORS_SHAPE_PATCHES:
            if code.count(old) != 1:
                raise HeaderFixError(f"SOFIE's safetensors reader does not have the form jax2sofie extends: "
                                     f"{old.strip()[:60]!r} (another SOFIE version?)")
            code = code.replace(old, new)
        declaration = code.find("\nstruct Session;\n")
    code = code[:declaration] + _WEIGHT_HELPERS + code[declaration:]
    if text:
        reads = list(_TEXT_READ.finditer(code))
        last = reads[-1]["name"]
        code = _TEXT_READ.sub(lambda m: f'{m["indent"]}J2S_ReadTensorFromStream(f, filename, {m["target"]}, '
                                        f'"{m["name"]}", {m["length"]});\n', code)
        close = _TEXT_CLOSE.search(code, code.rfind(f'"{last}"'))
        if close is None:
            raise HeaderFixError("cannot find the end of the weight reading (`f.close();`) in the generated Session")
        code = (code[:close.start()] + f'{close["indent"]}J2S_ExpectEndOfWeights(f, filename, "{last}");\n'
                + code[close.start():])
    if safetensors:
        def with_shape_check(match: re.Match) -> str:
            shape = (weight_shapes or {}).get(match["name"])
            if shape is None:
                return match[0]
            dims = ", ".join(str(int(d)) for d in shape)
            return f'{match[0]}{match["indent"]}J2S_CheckSafetensorsShape(sofie_weights_reader, "{match["name"]}", {{{dims}}});\n'
        code = _SAFETENSORS_READ.sub(with_shape_check, code)
        # errors of the blob (truncated, malformed JSON, missing tensor, ...) get the file's name
        code, found = _SAFETENSORS_FROM_FILE.subn(
            lambda m: (f"{m['head']} try\n{m['init']} {{}}\n"
                       "catch (std::runtime_error const &error) {\n"
                       "   throw std::runtime_error(\"jax2sofie: weight file '\" + filename + \"': \" + error.what());\n"
                       "}"), code)
        if found != 1:
            raise HeaderFixError("cannot find the Session constructor that loads the safetensors file")
    return code


# a float tensor's initializer as SOFIE writes it: `float tensor_x[2] = { ... };`,
# `std::vector<float> fTensor_x = { ... };` or `std::vector<float> fTensor_x = std::vector<float>(n, v);`
_FLOAT_INITIALIZER = re.compile(r"^(?P<head>(?:static )?(?:const )?(?:float|std::vector<float>) \w+(?:\[\d+\])? = )"
                                r"(?P<values>.*);$", re.MULTILINE)
_NEGATIVE_ZERO = re.compile(r"(?<![\w.+-])-0(?![\w.])")  # `-0` alone, not -0.5, 1e-05 or -03


def keep_negative_zeros(code: str) -> str:
    """`-0` in a float initializer (SOFIE's text for -0.0f, read by C++ as +0.0f) becomes `-0.0f`."""
    def fixed(match: re.Match) -> str:
        return match["head"] + _NEGATIVE_ZERO.sub("-0.0f", match["values"]) + ";"

    return _FLOAT_INITIALIZER.sub(fixed, code)


def fix_header_code(code: str, weight_shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """Every change of this module, on the text of one generated header; `weight_shapes`: see
    checked_weight_reading."""
    fixed = checked_weight_reading(keep_negative_zeros(drop_repeated_guarded_blocks(code)), weight_shapes)
    fixed = vectorise_sofie_reductions(silence_sofie_warnings(move_outputs_out_of_infer(fixed)))
    return make_session_copyable(separate_intermediates_option(fixed))


def fix_header(path: Path, weight_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Apply every change of this module to the header at `path`."""
    path = Path(path)
    code = path.read_text()
    fixed = fix_header_code(code, weight_shapes)
    if fixed != code:
        path.write_text(fixed)
