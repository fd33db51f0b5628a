"""saddles.hessian.hvp: Hessian-vector products of a model's loss against exact Hessians,
the parameter filters, and the determinism checks.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hessian_cases import F64, make_cnn, make_mlp, make_pinn

from saddles.hessian import (
    DenseOperator,
    HessianOperator,
    NondeterministicHessianError,
    select_parameters,
    top_eigen,
    trace,
)
from saddles.io.data import make_loss


def test_matvec_and_matmat_equal_exact_hessian(case):
    name, model, loss, data, H = case
    methods = ["reverse"] if name == "pinn" else ["reverse", "forward"]
    gen = torch.Generator().manual_seed(1)
    V = torch.randn(H.shape[0], 5, generator=gen, dtype=F64)
    HV = H @ V.numpy()
    for method, cache, batched in itertools.product(methods, (True, False), (True, False, None)):
        op = HessianOperator(
            model, loss, data, dtype=F64, hvp=method, cache_graph=cache, batched=batched
        )
        assert op.dim == H.shape[0] and op.hvp_method == method
        atol = 1e-10 * np.abs(HV).max()
        np.testing.assert_allclose(op.matvec(V[:, 0]).numpy(), HV[:, 0], rtol=0, atol=atol)
        np.testing.assert_allclose(op.matmat(V).numpy(), HV, rtol=0, atol=atol)
        assert op.batched in ((True, False) if batched is None else (batched,))
        np.testing.assert_allclose(op.matmat(V).numpy(), HV, rtol=0, atol=atol)  # after choice
        lin = op.as_linear_operator()
        np.testing.assert_allclose(lin @ V.numpy(), HV, rtol=0, atol=atol)


def test_fastest_method_is_measured_and_falls_back_for_input_derivatives():
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.hvp_method in ("reverse", "forward")
    assert op.hvp_timings["reverse"] > 0 and op.hvp_timings["forward"] > 0
    model, loss, data, _ = make_pinn()
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.hvp_method == "reverse" and op.hvp_timings["forward"] is None
    assert "forward-over-reverse failed" in op.hvp_unavailable
    with pytest.raises(ValueError, match="hvp='reverse'"):
        HessianOperator(model, loss, data, dtype=F64, hvp="forward")


def test_fastest_times_the_first_block_without_an_extra_product():
    model, loss, data, exact = make_mlp()
    H = exact().numpy()
    V = torch.randn(H.shape[0], 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    op = HessianOperator(model, loss, data, dtype=F64, hvp="fastest")
    assert op.batched is None and op.n_hvps == 0 and op.n_setup_hvps >= 5
    np.testing.assert_allclose(op.matmat(V).numpy(), H @ V.numpy(), rtol=0, atol=1e-12)
    assert op.batched in (True, False) and op.hvp_timings["block_per_vector"] > 0
    assert op.n_hvps == 4


def test_auto_is_a_fixed_rule_and_results_are_functions_of_the_inputs():
    """hvp="auto" measures nothing: double backward, looped blocks on the CPU, no products at
    construction; two operators give bit-identical results, and a block equals its columns."""
    model, loss, data, _ = make_cnn()
    ops = [HessianOperator(model, loss, data) for _ in range(2)]
    for op in ops:
        assert op.hvp_method == "reverse" and op.batched is False
        assert op.n_hvps == op.n_setup_hvps == 0
        assert op.hvp_timings == {"reverse": None, "forward": None}
    a, b = (top_eigen(op, 2, seed=1) for op in ops)
    assert np.array_equal(a.eigenvalues, b.eigenvalues) and np.array_equal(a.vectors, b.vectors)
    V = torch.randn(ops[0].dim, 3, generator=torch.Generator().manual_seed(0))
    block = ops[0].matmat(V)
    assert all(torch.equal(block[:, j], ops[0].matvec(V[:, j])) for j in range(3))


def test_setup_costs_one_product_and_budgets_are_exact():
    """The default checks cost one HVP (the first product, recomputed), counted apart from the
    products the algorithms ask for, so each algorithm spends exactly its budget."""
    model, loss, data, _ = make_mlp()
    op = HessianOperator(model, loss, data)
    assert op.n_setup_hvps == 0 and op.determinism_gap is None and op.setup_seconds > 0
    tr = trace(op)  # the documented default budget: 99 products
    assert tr.n_matvecs == 99 and op.n_hvps == 99 and op.n_setup_hvps == 1
    assert op.determinism_gap == 0.0
    before = op.n_hvps
    hutch = trace(op, "hutchinson", 99, seed=1)
    assert hutch.n_matvecs == 99 and op.n_hvps - before == 99
    before = op.n_hvps
    eig = top_eigen(op, 1)
    assert eig.n_hvps == op.n_hvps - before and op.n_setup_hvps == 1  # checked once only
    H = op.to_dense().double()
    for kind in ("hutch++", "hutchinson"):  # the same budgets on an explicit matrix
        dense = DenseOperator((H + H.T) / 2)
        assert trace(dense, kind).n_matvecs == dense.n_hvps == 99
    unchecked = HessianOperator(model, loss, data, check_determinism=False)
    top_eigen(unchecked, 1)
    assert unchecked.n_setup_hvps == 0 and unchecked.determinism_gap is None
    eager = HessianOperator(model, loss, data)
    assert eager.check_determinism() == 0.0 and eager.n_setup_hvps == 2
    eager.matvec(torch.ones(eager.dim))
    assert eager.n_setup_hvps == 2  # checked already: the first product is not recomputed


def test_batches_are_weighted_by_size():
    model, loss, (x, y), exact = make_mlp()
    H = exact().numpy()
    batches = [(x[:5], y[:5]), (x[5:30], y[5:30]), (x[30:], y[30:])]
    for cache in (False, True):
        op = HessianOperator(model, loss, batches, dtype=F64, cache_graph=cache)
        np.testing.assert_allclose(op.to_dense().numpy(), H, rtol=0, atol=1e-12)


def test_loss_sees_operator_parameters_through_model_parameters():
    """A weight-decay term written with model.parameters() adds exactly 2 c I."""
    model, loss, data, _ = make_mlp()
    c = 0.3

    def decayed(m, batch):
        return loss(m, batch) + c * sum((p**2).sum() for p in m.parameters())

    plain = HessianOperator(model, loss, data, dtype=F64).to_dense()
    both = HessianOperator(model, decayed, data, dtype=F64).to_dense()
    np.testing.assert_allclose((both - plain).numpy(), 2 * c * np.eye(plain.shape[0]), atol=1e-12)


def test_float32_operator_is_close_to_float64():
    model, loss, data, exact = make_mlp()
    top = np.linalg.eigvalsh(exact().numpy())[-1]
    op = HessianOperator(model, loss, data)
    assert op.dtype == torch.float32
    r = top_eigen(op, 1)
    assert abs(r.eigenvalues[0] - top) <= 1e-5 * abs(top)


def test_model_is_left_untouched():
    model, loss, data, _ = make_cnn()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    stats = model.bn.running_mean.clone()
    op = HessianOperator(model, loss, data, dtype=F64)
    top_eigen(op, 2)
    assert model.training and model.bn.training  # mode restored after every product
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert torch.equal(stats, model.bn.running_mean)
    assert next(model.parameters()).dtype == torch.float32


def test_parameter_filters_select_what_they_say():
    model, loss, data, exact = make_mlp()
    names = [n for n, _ in model.named_parameters()]
    assert select_parameters(model, "all") == names
    assert select_parameters(model, "weights") == ["0.weight", "2.weight"]
    assert select_parameters(model, lambda n: n.startswith("2.")) == ["2.weight", "2.bias"]
    assert select_parameters(model, ["2.bias", "0.weight"]) == ["0.weight", "2.bias"]
    model[0].bias.requires_grad_(False)
    assert "0.bias" not in select_parameters(model, "all")
    model[0].bias.requires_grad_(True)

    full = exact().numpy()
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    starts = dict(zip(names, np.cumsum([0] + [sizes[n] for n in names])[:-1], strict=True))
    for spec in ("weights", ["2.bias", "0.weight"]):
        op = HessianOperator(model, loss, data, params=spec, dtype=F64)
        sel = select_parameters(model, spec)
        idx = np.concatenate([np.arange(starts[n], starts[n] + sizes[n]) for n in sel])
        assert op.dim == len(idx) and op.names == tuple(sel)
        np.testing.assert_allclose(op.to_dense().numpy(), full[np.ix_(idx, idx)], atol=1e-12)
        r = top_eigen(op, 2)
        for vec, (n, p) in zip(r.eigenvectors[0], model.named_parameters(), strict=True):
            assert vec.shape == p.shape and vec.dtype == p.dtype
            if n not in sel:
                assert torch.count_nonzero(vec) == 0
        flat = op.flatten(r.eigenvectors[0]).numpy()
        np.testing.assert_allclose(flat, r.vectors[0], atol=1e-7)  # float32 round trip


def test_bad_parameter_filters_are_rejected():
    model = make_mlp()[0]
    with pytest.raises(ValueError, match="unknown parameter name"):
        select_parameters(model, ["0.weight", "nope"])
    with pytest.raises(ValueError, match="selected no parameters"):
        select_parameters(model, lambda n: False)
    with pytest.raises(ValueError, match="unknown parameter filter"):
        select_parameters(model, "biases")
    with pytest.raises(TypeError, match="params must be"):
        select_parameters(model, 3)


def test_dropout_in_train_mode_is_detected():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )
    data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    loss = make_loss(criterion=torch.nn.CrossEntropyLoss())
    # The check runs on the operator's first product (or at once, on request).
    with pytest.raises(NondeterministicHessianError, match="train mode and has Dropout"):
        top_eigen(HessianOperator(model, loss, data, train=True), 1)
    with pytest.raises(NondeterministicHessianError, match="train mode and has Dropout"):
        HessianOperator(model, loss, data, train=True).check_determinism()
    op = HessianOperator(model, loss, data)  # eval mode: dropout is off
    op.matvec(torch.ones(op.dim))
    assert op.determinism_gap == 0.0
    accepted = HessianOperator(model, loss, data, train=True, check_determinism=False)
    top_eigen(accepted, 1)  # accepted on request


def test_random_loss_and_changing_data_are_detected():
    model, loss, (x, y), _ = make_mlp()

    def noisy(m, batch):
        return loss(m, (batch[0] + 0.1 * torch.randn_like(batch[0]), batch[1]))

    v = torch.ones(67)
    with pytest.raises(NondeterministicHessianError, match="draws random numbers"):
        HessianOperator(model, noisy, (x, y)).matvec(v)
    dataset = torch.utils.data.TensorDataset(x, y)
    torch.manual_seed(0)
    dropping = torch.utils.data.DataLoader(dataset, batch_size=10, shuffle=True, drop_last=True)
    with pytest.raises(NondeterministicHessianError, match="different data on each pass"):
        HessianOperator(model, loss, dropping, dtype=F64).matmat(torch.ones(67, 3, dtype=F64))
    shuffled = torch.utils.data.DataLoader(dataset, batch_size=10, shuffle=True)
    op = HessianOperator(model, loss, shuffled, dtype=F64)  # same data, other order: fine
    op.matvec(v)
    assert op.determinism_gap < 1e-12
    # A failed check is not forgotten: every later product checks again.
    noisy_op = HessianOperator(model, noisy, (x, y))
    for _ in range(2):
        with pytest.raises(NondeterministicHessianError):
            noisy_op.matvec(v)


def test_bad_inputs_get_clear_messages():
    """The operator refuses what it cannot differentiate, with a message naming it."""
    model, loss, data, _ = make_mlp()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        HessianOperator(lambda x: x, loss, data)
    with pytest.raises(TypeError, match="make_loss"):
        HessianOperator(model, torch.nn.CrossEntropyLoss(), data)
    with pytest.raises(ValueError, match="hvp must be one of"):
        HessianOperator(model, loss, data, hvp="finite-differences")
    with pytest.raises(ValueError, match="scalar"):
        HessianOperator(model, lambda m, b: m(b[0]), data)
    with pytest.raises(ValueError, match="does not depend on the selected parameters"):
        HessianOperator(model, lambda m, b: loss(m, b).detach(), data)
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, loss, [])
