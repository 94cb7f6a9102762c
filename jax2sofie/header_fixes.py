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
- Warnings: the header and a program including it compile with `-Wall -Wextra -Werror` (GCC, Clang).
  Where SOFIE writes code that warns, the code is changed where a textual change is exact (see
  `silence_sofie_warnings`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


def silence_sofie_warnings(code: str) -> str:
    """Change the code SOFIE writes that -Wall -Wextra warns about (unused parameter and variables,
    signed/unsigned loop comparisons) into equivalent code that does not warn."""
    code = _DO_INFER_SESSION.sub("doInfer([[maybe_unused]] Session const &session,", code)
    code = _UNUSED_IDX.sub(r"\g<pool>", code)
    code = _drop_unused_reduced_lengths(code)
    return _INT_ELEMENT_LOOP.sub("for (size_t id = 0; id < ", code)


def fix_header_code(code: str) -> str:
    """Every change above, on the text of one generated header."""
    return make_session_copyable(silence_sofie_warnings(move_outputs_out_of_infer(drop_repeated_guarded_blocks(code))))


def fix_header(path: Path) -> None:
    path = Path(path)
    code = path.read_text()
    fixed = fix_header_code(code)
    if fixed != code:
        path.write_text(fixed)
