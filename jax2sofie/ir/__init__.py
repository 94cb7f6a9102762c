"""The jax2sofie intermediate representation."""
from .builder import GraphBuilder, identifier
from .graph import Graph, Node, Value
from .verify import verify

__all__ = ["Graph", "GraphBuilder", "Node", "Value", "identifier", "verify"]
