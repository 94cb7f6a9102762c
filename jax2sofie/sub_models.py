"""The code of sub-models (a J2S_While loop's condition and body) in the model's header.

Each sub-model is a graph of its own (Graph.sub_models), emitted to its own sofie.RModel and
generated like a model: a `namespace SOFIE_<name>` with a Session and a doInfer, its constants in
the code (no weight file: the weights a loop reads are the main model's, passed in as inputs).
The header fixes are made on each sub-model's text, then the texts go into the model's header
before its own namespace, where the J2S_While operator's Session members and calls refer to them.
A sub-model's own loops come before it.
"""
from __future__ import annotations

from pathlib import Path

import sofie

from .emit import emit
from .errors import ConversionError
from .header_fixes import HeaderFixError, fix_header_code
from .ir import Graph

SUB_MODEL_OPS = {"J2S_While": ("cond_model", "body_model")}


def sub_models_of(graph: Graph) -> list[Graph]:
    """The sub-models the nodes of `graph` use, each after the sub-models it uses itself."""
    ordered: list[Graph] = []
    for node in graph.nodes:
        for key in SUB_MODEL_OPS.get(node.op, ()):
            sub = graph.sub_models[node.attrs[key]]
            ordered += sub_models_of(sub) + [sub]
    return ordered


def generate_sub_models(graph: Graph) -> str:
    """The header text of every sub-model of `graph` ("" for a model without loops)."""
    parts = []
    for sub in sub_models_of(graph):
        rmodel = emit(sub)
        try:
            rmodel.generate(sofie.Options.kNoWeightFile)
        except Exception as exc:  # SOFIE's own checks run here; say where the error comes from
            raise ConversionError(f"SOFIE failed to generate code for the loop sub-model '{sub.name}': {exc}") from exc
        parts.append(fix_header_code(rmodel.return_generated()))
    return "\n".join(parts)


def embed_sub_models(header: Path, model_name: str, code: str) -> None:
    """Put the sub-models' code into the header at `header`, before the model's namespace."""
    if not code:
        return
    text = Path(header).read_text()
    opening = f"\nnamespace SOFIE_{model_name}{{\n"
    position = text.find(opening)
    if position < 0:
        raise HeaderFixError(f"cannot find `namespace SOFIE_{model_name}{{` in the generated header, before which "
                             "the code of its loops' sub-models goes")
    Path(header).write_text(text[:position + 1] + code + "\n" + text[position + 1:])
