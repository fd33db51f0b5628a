"""saddles.hessian.operator: the operator interface (products, checks, the scipy view) and
the dense matrix behind it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from hessian_cases import F64, make_mlp

from saddles.hessian import DenseOperator, HessianOperator


def test_eigsh_agrees_on_linear_operator():
    model, loss, data, exact = make_mlp()
    top = np.linalg.eigvalsh(exact().numpy())[-2:]
    op = HessianOperator(model, loss, data, dtype=F64)
    vals = scipy.sparse.linalg.eigsh(op.as_linear_operator(), k=2, which="LA", tol=1e-12)[0]
    np.testing.assert_allclose(np.sort(vals), top, rtol=1e-8)


def test_bad_vectors_and_matrices_get_clear_messages():
    """Products check their vectors; a dense operator checks its matrix."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64)
    with pytest.raises(ValueError, match=r"shape \(67,\)"):
        op.matvec(torch.zeros(5))
    with pytest.raises(TypeError, match="torch tensor"):
        op.matvec(np.zeros(op.dim))
    with pytest.raises(ValueError, match="not symmetric"):
        DenseOperator(np.arange(4.0).reshape(2, 2))
