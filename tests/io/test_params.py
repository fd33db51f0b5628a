"""Parameter selections (saddles.io.params), dict batches and the LM-scale options of evaluate."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saddles import directions, params, sampling
from saddles.hessian import HessianOperator, select_parameters
from saddles.io import data as data_mod
from saddles.landscape import evaluate
from saddles.landscape.noise import noise_floor
from saddles.landscape.problem import setup
from saddles.landscape.rundir import config_parts, hash_tensor


class Tied(torch.nn.Module):
    """Embedding -> norm -> linear head tied to the embedding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(7, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.hidden = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 7, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.hidden(self.norm(self.embed(ids)))))


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _dict_loss(model, batch):
    return F.cross_entropy(model(batch["x"]), batch["y"])


def _dict_batch():
    torch.manual_seed(1)
    return {"x": torch.randn(10, 3), "y": torch.randint(0, 2, (10,))}


def test_selection_by_globs_dims_and_types_counts_tied_weights_once():
    model = Tied()
    everything = params.select(model)
    assert everything.names == ("embed.weight", "norm.weight", "norm.bias", "hidden.weight",
                                "hidden.bias")  # fmt: skip
    assert everything.n_tensors == everything.n_tensors_total == 5
    assert everything.n_scalars == 28 + 8 + 20
    # the tied tensor is included through either of its names, and excluded through either
    assert params.select(model, {"include": ["head.*"]}).names == ("embed.weight",)
    assert "embed.weight" not in params.select(model, {"exclude": ["head.weight"]})
    picked = params.select(model, {"exclude": ["*norm*"], "exclude_1d": True})
    assert picked.names == ("embed.weight", "hidden.weight")
    assert picked.info()["n_scalars"] == 28 + 16 and picked.info()["n_tensors_total"] == 5
    assert params.select(model, {"types": ["Linear"]}).names == ("embed.weight", "hidden.weight",
                                                                 "hidden.bias")  # fmt: skip
    with pytest.raises(ValueError, match=r"'layers\.9\.\*' matches no parameter name"):
        params.select(model, {"include": ["layers.9.*"]})
    with pytest.raises(ValueError, match=r"exclude=\['\*'\] selects no parameter"):
        params.select(model, {"exclude": ["*"]})
    with pytest.raises(ValueError, match="unknown params key"):
        params.check_spec({"inclde": ["x"]})


def test_hessian_select_parameters_keeps_its_old_forms_and_takes_specs():
    model = _mlp()
    assert select_parameters(model, "all") == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert select_parameters(model, "weights") == ["0.weight", "2.weight"]
    assert select_parameters(model, ["2.bias"]) == ["2.bias"]
    assert select_parameters(model, lambda n: n.startswith("0")) == ["0.weight", "0.bias"]
    assert select_parameters(model, {"include": ["2.*"]}) == ["2.weight", "2.bias"]
    model[0].bias.requires_grad_(False)  # the old forms skip frozen tensors, as before
    assert select_parameters(model, "all") == ["0.weight", "2.weight", "2.bias"]


def test_hessian_over_a_selection_is_the_exact_block():
    model = _mlp().double()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in _dict_batch().items()}
    spec = {"include": ["2.*"]}
    op = HessianOperator(model, _dict_loss, batch, params=spec, dtype=torch.float64)
    assert op.names == ("2.weight", "2.bias") and op.dim == 10
    assert op.params_info["n_tensors"] == 2 and op.params_info["n_scalars_total"] == 26
    named = dict(model.named_parameters())

    def block_loss(w, b):
        full = {**named, "2.weight": w, "2.bias": b}
        return _dict_loss(lambda x: torch.func.functional_call(model, full, (x,)), batch)

    w, b = named["2.weight"].detach(), named["2.bias"].detach()
    h = torch.func.hessian(block_loss, argnums=(0, 1))(w, b)
    exact = torch.cat([torch.cat([h[0][0].reshape(8, 8), h[0][1].reshape(8, 2)], 1),
                       torch.cat([h[1][0].reshape(2, 8), h[1][1].reshape(2, 2)], 1)])  # fmt: skip
    dense = op.matmat(torch.eye(10, dtype=torch.float64))
    torch.testing.assert_close(dense, exact, atol=1e-10, rtol=1e-9)


def test_directions_are_zero_outside_the_selection_and_those_parameters_never_move():
    model = _mlp()
    spec = {"include": ["2.weight"]}
    d = directions.random_directions(model, 2, seed=3, params=spec, norm="model")
    assert d.info["params"]["n_tensors"] == 1 and d.info["params"]["n_scalars"] == 8
    for direction in d.tensors:
        assert [bool(t.any()) for t in direction] == [False, False, True, False]
    # "model" normalization over the selected tensor only: its norm equals the weight's
    assert float(d.tensors[0][2].norm()) == pytest.approx(
        float(model[2].weight.detach().norm()), rel=1e-5
    )
    fixed = {n: p.detach().clone() for n, p in model.named_parameters() if n != "2.weight"}
    seen = []

    def watching(m, batch):
        seen.append({n: p.detach().clone() for n, p in m.named_parameters() if n in fixed})
        return _dict_loss(m, batch)

    land = evaluate(model, watching, _dict_batch(), d, sampling.grid(3), engine="sequential",
                    progress=False)  # fmt: skip
    assert len(seen) >= 9 and np.ptp(land.loss) > 0
    for state in seen:
        for n, t in state.items():
            assert torch.equal(t, fixed[n]), n
    assert land.info["params"]["n_tensors"] == 1
    # evaluate(params=) zeroes given directions outside the selection, the batched engine too
    full = directions.random_directions(model, 2, seed=3)
    land2 = evaluate(model, _dict_loss, _dict_batch(), full, sampling.grid(3), params=spec,
                     engine="batched", progress=False)  # fmt: skip
    problem = setup(model, _dict_loss, None, None, _dict_batch(), full, sampling.grid(3), None,
                    None, params=spec)  # fmt: skip
    assert problem.moving == [2]
    assert land2.info["params"]["n_scalars"] == 8


def test_dict_batches_stay_dicts_and_criteria_read_named_keys():
    batch = {"targets": torch.tensor([0, 1]), "inputs": torch.randn(2, 3)}  # targets first
    (same,) = data_mod.as_batches(batch)
    assert isinstance(same, dict) and list(same) == ["targets", "inputs"]
    assert data_mod.batch_size({"a": torch.zeros(3, 2), "input_ids": torch.zeros(5, 2)}) == 5
    moved = data_mod.move_batches([batch], "cpu", torch.float64)[0]
    assert moved["inputs"].dtype == torch.float64 and moved["targets"].dtype == torch.int64
    model = _mlp()
    loss = data_mod.make_loss(criterion="cross_entropy")
    expected = F.cross_entropy(model(batch["inputs"]), batch["targets"])
    assert torch.equal(loss(model, batch), expected)  # never reordered
    keyed = data_mod.make_loss(criterion="cross_entropy", inputs_key="x", targets_key="y")
    assert torch.equal(keyed(model, {"y": batch["targets"], "x": batch["inputs"]}), expected)
    with pytest.raises(ValueError, match=r"needs the keys \['inputs', 'targets'\].*\['x', 'y'\]"):
        loss(model, {"x": batch["inputs"], "y": batch["targets"]})
    several = data_mod.as_batches([batch, batch])
    assert len(several) == 2 and all(isinstance(b, dict) for b in several)


def test_run_hash_of_tuple_batches_is_unchanged_and_dict_hash_sees_keys():
    model = _mlp()
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    d = directions.random_directions(model, 1, seed=0)
    coords = sampling.grid(3, dims=1)

    def parts(data):
        return config_parts(setup(model, _dict_loss, None, None, data, d, coords, None, None),
                            coords, False)  # fmt: skip

    old = hashlib.sha256()  # the hash of a tuple batch as it always was
    for t in (x, y):
        hash_tensor(old, t)
    assert parts((x, y))["data"] == old.hexdigest()
    assert "autocast" not in parts((x, y))
    a = parts({"x": x, "y": y})["data"]
    assert a == parts({"y": y, "x": x})["data"]  # sorted keys
    assert a != parts({"x": x, "z": y})["data"] != old.hexdigest()


def test_causal_lm_loss_matches_cross_entropy_with_masks_and_labels():
    torch.manual_seed(0)
    emb = torch.nn.Sequential(torch.nn.Embedding(11, 6), torch.nn.Linear(6, 11)).requires_grad_(
        False
    )
    ids = torch.randint(0, 11, (3, 5))
    logits = emb(ids)
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    assert float(data_mod.causal_lm_loss(emb, {"input_ids": ids})) == pytest.approx(float(plain))
    assert float(data_mod.causal_lm_loss(emb, (ids,))) == pytest.approx(float(plain))
    mask = torch.ones_like(ids)
    mask[0, 3:] = 0
    labels = ids.clone()
    labels[1, 2] = -100
    target = labels[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 11), target.reshape(-1), ignore_index=-100)
    got = data_mod.causal_lm_loss(emb, {"input_ids": ids, "attention_mask": mask,
                                        "labels": labels})  # fmt: skip
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    with pytest.raises(ValueError, match="needs a dict batch with 'input_ids'"):
        data_mod.causal_lm_loss(emb, {"tokens": ids})


def test_eval_tokens_cuts_whole_sequences_and_is_recorded():
    batches = [{"input_ids": torch.arange(12).reshape(3, 4)}, {"input_ids": torch.zeros(2, 4)}]
    cut = data_mod.cap_tokens(batches, 18)  # 3 sequences of 4, then 1 more: 16 tokens
    assert [data_mod.batch_size(b) for b in cut] == [3, 1]
    assert data_mod.cap_tokens(batches, None) is batches
    with pytest.raises(ValueError, match="less than one sequence"):
        data_mod.cap_tokens(batches, 3)
    model = _mlp()
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    land = evaluate(model, _dict_loss, {"x": x, "y": y}, directions.random_directions(model, 1),
                    sampling.grid(3, dims=1), eval_tokens=5, progress=False)  # fmt: skip
    assert land.info["data"]["eval_tokens"] == 5 and land.info["data"]["n_samples"] == 1


def test_autocast_bf16_adds_noise_that_the_noise_floor_measures():
    model = _mlp()
    batch = _dict_batch()
    d = directions.random_directions(model, 2, seed=0)
    coords = sampling.grid(5)
    kw = {"engine": "sequential", "progress": False}
    exact = evaluate(model, _dict_loss, batch, d, coords, **kw)
    low = evaluate(model, _dict_loss, batch, d, coords, autocast="bf16", **kw)
    assert low.info["autocast"] == "bf16" and exact.info["autocast"] is None
    gap = np.max(np.abs(low.loss - exact.loss))
    assert 1e-5 < gap < 0.1
    floor_low = noise_floor(model, _dict_loss, batch, d, low, n_points=25)["noise_floor"]
    floor = noise_floor(model, _dict_loss, batch, d, exact, n_points=25)["noise_floor"]
    assert floor_low > 10 * floor and floor_low >= 0.5 * gap
    with pytest.raises(ValueError, match="autocast must be"):
        evaluate(model, _dict_loss, batch, d, coords, autocast="int8", **kw)


class _NoDoubleBackward(torch.autograd.Function):
    """Stands in for a fused attention kernel: a backward without its own derivative."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "derivative for aten::_scaled_dot_product_efficient_attention_backward is not "
                "implemented"
            )
        (x,) = ctx.saved_tensors
        return grad * x.cos()


def test_a_kernel_without_double_backward_names_eager_attention():
    model = _mlp()

    def loss(m, batch):
        return _NoDoubleBackward.apply(m(batch["x"])).pow(2).mean()

    op = HessianOperator(model, loss, _dict_batch(), check_determinism=False)
    with pytest.raises(RuntimeError, match='attn_implementation="eager"'):
        op.matvec(torch.ones(op.dim))
