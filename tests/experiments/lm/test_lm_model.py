"""The GPT: sizes, shapes, causality, the loss, and the loss under torch.func (vmap over
parameter sets, Hessian-vector products) and the landscape engines."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from gpt_for_tests import tiny_gpt
from torch import nn

from saddles.experiments.lm import SIZES, fixed_eval_batch, gpt_for_size, lm_loss, presets

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_sizes_grow_in_width_and_depth_and_parameter_counts_match_the_docstring():
    counts = [sum(p.numel() for p in gpt_for_size(i, 103, 64).parameters()) for i in range(4)]
    assert counts == sorted(counts) and 15_000 < counts[0] < 30_000 < 500_000 < counts[-1] < 1.1e6
    for name, count in zip(SIZES, counts, strict=True):
        assert f"{name}" in presets.__doc__ and f"{count:,}" in presets.__doc__
    block_128 = sum(p.numel() for p in gpt_for_size("L4-d128", 103, 128).parameters())
    assert f"{block_128:,}" in presets.__doc__
    layers = [s.n_layer for s in SIZES.values()]
    widths = [s.n_embd for s in SIZES.values()]
    assert layers == sorted(layers) and widths == sorted(widths) and len(set(layers)) == 4
    with pytest.raises(KeyError, match="unknown size"):
        gpt_for_size("huge", 103, 64)
    a, b = gpt_for_size(0, 103, 64, seed=5), gpt_for_size("L1-d32", 103, 64, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_forward_shapes_and_causality():
    model = tiny_gpt().eval()
    idx = torch.randint(0, 103, (3, 12), generator=torch.Generator().manual_seed(0))
    logits = model(idx)
    assert logits.shape == (3, 12, 103)
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 103
    other = model(changed)
    torch.testing.assert_close(other[:, :7], logits[:, :7], rtol=0, atol=0)
    assert (other[:, 7:] - logits[:, 7:]).abs().amax() > 1e-4
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(1, 17, dtype=torch.int64))


def test_loss_at_initialization_is_about_log_vocab(corpus):
    _, _, _, train, _ = corpus
    model = gpt_for_size("L2-d64", 103, 64).eval()
    with torch.no_grad():
        loss = float(lm_loss(model, fixed_eval_batch(train, 16, 64)))
    assert abs(loss - math.log(103)) < 0.05


# --- loss under torch.func: vmap and Hessian-vector products --------------------------------


class LossOf(nn.Module):
    """``forward(batch) = lm_loss(model, batch)``, so functional_call swaps the parameters for
    the whole loss (as the landscape sampler's batched engine does)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return lm_loss(self.model, batch)


def test_lm_loss_vmaps_over_stacked_parameters_and_matches_a_loop(corpus):
    _, _, _, train, _ = corpus
    model = tiny_gpt().eval()
    batch = fixed_eval_batch(train, 4, 16)
    gen = torch.Generator().manual_seed(1)
    stacked = {
        f"model.{k}": torch.stack(
            [v.detach(), v.detach() + 0.05 * torch.randn(v.shape, generator=gen)]
        )
        for k, v in model.named_parameters()
    }
    wrapper = LossOf(model)

    def loss_at(params):
        return torch.func.functional_call(wrapper, params, (batch,))

    mapped = torch.vmap(loss_at)(stacked)
    loop = torch.stack([loss_at({k: v[i] for k, v in stacked.items()}) for i in range(2)])
    torch.testing.assert_close(mapped, loop, rtol=1e-5, atol=1e-5)
    assert float(loop[0]) == pytest.approx(float(lm_loss(model, batch).detach()), abs=1e-6)
    assert abs(float(loop[1] - loop[0])) > 1e-3  # the two parameter sets really differ


def test_hessian_vector_products_through_the_attention(corpus):
    """Double backward works (the reason attention is explicit matmuls, not fused SDPA): the
    HVP matches a central difference of gradients in float64."""
    _, _, _, train, _ = corpus
    model = tiny_gpt().double().eval()
    batch = fixed_eval_batch(train, 4, 16)
    params = list(model.parameters())
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
         for i, p in enumerate(params)]  # fmt: skip
    grads = torch.autograd.grad(lm_loss(model, batch), params, create_graph=True)
    hv = torch.autograd.grad(grads, params, v)
    eps = 1e-5

    def grad_at(sign):
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.add_(sign * eps * d)
        g = torch.autograd.grad(lm_loss(model, batch), params)
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.sub_(sign * eps * d)
        return g

    fd = [(a - b) / (2 * eps) for a, b in zip(grad_at(1.0), grad_at(-1.0), strict=True)]
    flat_hv, flat_fd = torch.cat([h.ravel() for h in hv]), torch.cat([f.ravel() for f in fd])
    assert flat_hv.norm() > 1e-3
    assert float((flat_hv - flat_fd).norm() / flat_hv.norm()) < 1e-5


def test_landscape_engines_agree_on_the_gpt_without_fallback(corpus):
    from saddles import directions, sampling
    from saddles.landscape import EngineFallbackWarning, evaluate

    _, _, _, _, val = corpus
    model = tiny_gpt()
    batch = fixed_eval_batch(val, 4, 16)
    dirs = directions.random_directions(model, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)
        kw = {"progress": False}
        batched = evaluate(model, lm_loss, batch, dirs, sampling.grid(3), engine="batched", **kw)
        loop = evaluate(model, lm_loss, batch, dirs, sampling.grid(3), engine="sequential", **kw)
    assert batched.info["fallback"] is None
    np.testing.assert_allclose(batched.loss, loop.loss, rtol=1e-5)
    assert np.ptp(loop.loss) > 1e-3


def test_vmap_of_functional_call_over_two_parameter_sets_matches_two_forward_calls():
    """The GPT's hand-written attention batches under vmap (no per-sample fallback): logits of
    two parameter sets in one vmapped call equal those of two separate models."""
    first, second = tiny_gpt(seed=0).eval(), tiny_gpt(seed=1).eval()
    idx = torch.randint(0, 103, (3, 12), generator=torch.Generator().manual_seed(2))
    params = {
        name: torch.stack([p.detach(), q.detach()])
        for (name, p), q in zip(first.named_parameters(), second.parameters(), strict=True)
    }

    def logits_at(one_set):
        return torch.func.functional_call(first, one_set, (idx,))

    toggle = getattr(torch._C._functorch, "_set_vmap_fallback_warning_enabled", None)
    if toggle is not None:
        toggle(True)  # make a missing batching rule visible as a warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mapped = torch.vmap(logits_at)(params)
    finally:
        if toggle is not None:
            toggle(False)
    with torch.no_grad():
        separate = torch.stack([first(idx), second(idx)])
    assert mapped.shape == (2, 3, 12, 103)
    torch.testing.assert_close(mapped, separate, rtol=1e-5, atol=1e-6)
    assert (separate[0] - separate[1]).abs().amax() > 1e-3  # the two sets really differ


def test_forward_over_reverse_hvp_matches_double_backward(corpus):
    """``torch.func.jvp`` of ``torch.func.grad`` (the Hessian module's "forward" mode) works
    through the attention and agrees with autograd's double backward in float64."""
    _, _, _, train, _ = corpus
    model = tiny_gpt().double().eval()
    batch = fixed_eval_batch(train, 4, 16)
    params = {f"model.{k}": p.detach() for k, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(3)
    v = {k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params.items()}
    wrapper = LossOf(model)

    def loss_of(p):
        return torch.func.functional_call(wrapper, p, (batch,))

    _, forward = torch.func.jvp(torch.func.grad(loss_of), (params,), (v,))
    leaves = list(model.parameters())
    grads = torch.autograd.grad(lm_loss(model, batch), leaves, create_graph=True)
    backward = torch.autograd.grad(grads, leaves, list(v.values()))
    flat_f = torch.cat([forward[k].ravel() for k in params])
    flat_b = torch.cat([h.ravel() for h in backward])
    assert flat_b.norm() > 1e-3
    torch.testing.assert_close(flat_f, flat_b, rtol=1e-10, atol=1e-12)


def test_lm_loss_is_the_next_token_loss_of_io_data():
    """lm_loss is the cross-entropy it always was, and the causal_lm criterion's number on the
    sequence it was cut from."""
    from saddles.io.data import causal_lm_loss

    model = tiny_gpt().eval()
    full = torch.randint(0, 103, (3, 13), generator=torch.Generator().manual_seed(2))
    x, y = full[:, :-1], full[:, 1:]
    with torch.no_grad():
        loss = float(lm_loss(model, (x, y)))
        logits = model(x)
        plain = nn.functional.cross_entropy(logits.reshape(-1, 103), y.reshape(-1))
        assert loss == pytest.approx(float(plain), abs=1e-6)
        assert loss == pytest.approx(float(causal_lm_loss(model, (full,))), abs=1e-6)
