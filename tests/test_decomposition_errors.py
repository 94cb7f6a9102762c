"""Matrix decompositions that the lowering refuses: each with a message naming what is missing and
where the model asks for it."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie.errors import ConversionError, LoweringError, UnsupportedPrimitivesError

MATRICES = np.eye(4, dtype=np.float32)[None].repeat(3, axis=0)


@pytest.mark.parametrize("fn, message", [
    (lambda p, x: lax.linalg.schur(x, sort_eig_vals=True), "schur with sort_eig_vals=True"),
    (lambda p, x: lax.linalg.hessenberg(x[:, :1, :1]), "hessenberg of 1x1 matrices"),
    (lambda p, x: lax.linalg.eigh(x, subset_by_index=(0, 2)), "eigh with subset_by_index=.0, 2."),
    (lambda p, x: lax.linalg.svd(x, full_matrices=False, subset_by_index=(1, 3)), "svd with subset_by_index"),
])
def test_refused_with_a_clear_message(fn, message):
    with pytest.raises(LoweringError, match=message) as error:
        jax2sofie.convert(fn, None, MATRICES)
    assert "test_decomposition_errors.py" in str(error.value)  # the user's source line


def test_unlowered_decompositions_are_listed_with_their_reason():
    with pytest.raises(UnsupportedPrimitivesError, match="eig: eig's eigenvalues and eigenvectors of a non-symmetric matrix are complex"):
        jax2sofie.convert(lambda p, x: jnp.linalg.eig(x), None, MATRICES)


def test_a_matrix_dimension_cannot_be_the_batch():
    """Only leading axes may be symbolic: a QR of a (batch, 4) matrix has the batch inside the matrix."""
    with pytest.raises((ConversionError, LoweringError, RuntimeError), match="symbolic matrix dimension 'bs'"):
        jax2sofie.convert(lambda p, x: jnp.linalg.qr(x)[1], None, np.ones((6, 4), np.float32), dynamic_batch=True)
