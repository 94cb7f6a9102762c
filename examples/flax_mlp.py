"""The built-in example: a Flax linen MLP (16 -> 64 relu -> 64 tanh -> 4 softmax) converted to C++.

Converts the model, writes `out/flax_mlp/mlp.hxx` + `mlp.dat`, compiles the header with the system
C++ compiler and OpenBLAS, runs it on random inputs at batch 1 and 64, compares with JAX and prints
the reports. Exits with status 1 if any check fails.

    python examples/flax_mlp.py [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jax2sofie


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        x = jnp.tanh(nn.Dense(64)(x))
        return nn.softmax(nn.Dense(4)(x))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/flax_mlp", help="where to write the header and weights")
    args = parser.parse_args()

    module = MLP()
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 16)))
    all_passed = True
    for batch in (1, 64):
        x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
        model = jax2sofie.convert(module.apply, variables, x, name="mlp")
        print(model.summary())
        if batch == 1:
            for path in model.write(args.out, test=True, force=True):
                print(f"  wrote {path}")
        report = model.check(x)
        print(f"batch {batch}: {report}\n")
        all_passed &= report.passed
    print("all checks passed" if all_passed else "CHECK FAILED")
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
