"""What the lowering rules and the graph passes both build on, below both layers (docs/architecture.md):
the C++ expressions of elementwise operators (expressions.py) and the numpy meaning of the operators
folded on constants (folding.py). Modules here import only ir/ and errors."""
