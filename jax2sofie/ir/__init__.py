"""The jax2sofie intermediate representation."""
from .builder import GraphBuilder, identifier
from .graph import LITERAL_MAX_ELEMENTS, Graph, Node, Value, belongs_in_weight_file
from .verify import verify

__all__ = ["Graph", "GraphBuilder", "LITERAL_MAX_ELEMENTS", "Node", "Value", "belongs_in_weight_file", "identifier",
           "verify"]
