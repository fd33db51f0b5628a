"""Noise from the data: the per-point standard error of the loss, and ``eval_tokens="auto"``.

Oracles: a plain loop over points and batches (values bit for bit, standard errors from the
per-example losses through ``scipy.stats.sem``), and a synthetic loss whose per-example noise
is known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from saddles.directions import random_directions
from saddles.experiments.lm.model import GPT, lm_loss
from saddles.experiments.pinn import convection_data, convection_loss, convection_squares
from saddles.io.data import causal_lm_loss, make_loss
from saddles.landscape import Landscape, evaluate
from saddles.landscape.tokens import auto_tokens
from saddles.sampling import grid
from tests.models_for_tests import CharTransformer, convection_pinn, tiny_mlp


def plain_loop(model, loss, batches, directions, points):
    """Each point's weights written with the engine's formula (one addmm per parameter), the
    loss of each batch, batches combined by size weights in float64: the old code path."""
    params = list(model.parameters())
    center = [p.detach().clone() for p in params]
    sizes = np.array([b[0].shape[0] for b in batches], dtype=np.float64)
    weights = sizes / sizes.sum()
    out = []
    with torch.no_grad():
        for c in points:
            point = torch.tensor(c, dtype=params[0].dtype).reshape(1, -1)
            for p, w0, *dirs in zip(params, center, *directions.tensors, strict=True):
                basis = torch.stack([d.reshape(-1) for d in dirs])
                torch.addmm(w0.reshape(1, -1), point, basis, out=p.view(1, -1))
            per = [float(loss(model, b).to(torch.float64)) for b in batches]
            if len(batches) == 1:
                out.append(per[0])
            else:
                total = 0.0
                for w, v in zip(weights, per, strict=True):
                    total += w * v
                out.append(total)
        for p, w0 in zip(params, center, strict=True):
            p.copy_(w0)
    return np.array(out)


def mlp_batches():
    model, (x, y) = tiny_mlp(seed=3)
    return model, [(x[:20], y[:20]), (x[20:44], y[20:44]), (x[44:], y[44:])]


def test_values_bit_identical_to_plain_loop_and_stderr_matches_per_example_losses():
    model, batches = mlp_batches()
    loss = make_loss(criterion="cross_entropy")
    d = random_directions(model, 2, seed=1)
    coords = grid(5, (-1.0, 1.0), dims=2)
    land = evaluate(model, loss, batches, d, coords, engine="sequential", progress=False)
    np.testing.assert_array_equal(land.loss, plain_loop(model, loss, batches, d, coords.points))
    # oracle: per-example losses at each point, scipy's standard error per batch, batches as
    # independent strata: sqrt(sum_b w_b^2 sem_b^2)
    sizes = np.array([b[0].shape[0] for b in batches], dtype=np.float64)
    w = sizes / sizes.sum()
    params = list(model.parameters())
    center = [p.detach().clone() for p in params]
    expected = []
    with torch.no_grad():
        for c in coords.points:
            for p, w0, *dirs in zip(params, center, *d.tensors, strict=True):
                p.copy_(w0 + sum(float(ci) * di for ci, di in zip(c, dirs, strict=True)))
            sems = [stats.sem(nn.functional.cross_entropy(model(x), y, reduction="none")
                              .double().numpy()) for x, y in batches]  # fmt: skip
            expected.append(math.sqrt(sum(wb**2 * s**2 for wb, s in zip(w, sems, strict=True))))
        for p, w0 in zip(params, center, strict=True):
            p.copy_(w0)
    np.testing.assert_allclose(land.loss_stderr, expected, rtol=1e-4)


def test_batched_engine_gives_the_same_stderr():
    model, batches = mlp_batches()
    d = random_directions(model, 2, seed=1)
    coords = grid(4, (-1.0, 1.0), dims=2)
    kw = {"criterion": "cross_entropy", "progress": False}
    seq = evaluate(model, None, batches, d, coords, engine="sequential", **kw)
    bat = evaluate(model, None, batches, d, coords, engine="batched", chunk_size=8, **kw)
    np.testing.assert_allclose(bat.loss_stderr, seq.loss_stderr, rtol=1e-5)
    np.testing.assert_allclose(bat.loss, seq.loss, rtol=1e-6)


def test_causal_lm_values_bit_identical_and_stderr_per_sequence():
    torch.manual_seed(0)
    model = CharTransformer().eval()
    ids = torch.randint(0, 11, (6, 8), generator=torch.Generator().manual_seed(2))
    d = random_directions(model, 2, seed=0)
    coords = grid(3, (-0.5, 0.5), dims=2)
    land = evaluate(model, causal_lm_loss, ids, d, coords, engine="sequential", progress=False)
    np.testing.assert_array_equal(
        land.loss, plain_loop(model, causal_lm_loss, [(ids,)], d, coords.points)
    )
    # at the centre: equal-length sequences, so the standard error is that of the sequences'
    # mean losses (scipy.stats.sem), not of the tokens
    with torch.no_grad():
        logits = model(ids)[:, :-1]
        per_token = nn.functional.cross_entropy(
            logits.reshape(-1, 11), ids[:, 1:].reshape(-1), reduction="none"
        ).reshape(6, 7)
    centre = len(coords.points) // 2
    assert np.all(coords.points[centre] == 0)
    sem = stats.sem(per_token.mean(dim=1).double().numpy())
    assert land.loss_stderr[centre] == pytest.approx(sem, rel=1e-5)
    token_sem = stats.sem(per_token.reshape(-1).double().numpy())
    assert abs(land.loss_stderr[centre] - token_sem) > 1e-3 * token_sem  # a different quantity


def test_lm_loss_and_pinn_loss_report_their_stderr():
    torch.manual_seed(0)
    gpt = GPT(vocab_size=11, n_layer=1, n_head=2, n_embd=16, block_size=8)
    x = torch.randint(0, 11, (5, 8), generator=torch.Generator().manual_seed(1))
    y = torch.roll(x, -1, dims=1)
    value, variance = lm_loss.with_variance(gpt, (x, y))
    assert torch.equal(value, lm_loss(gpt, (x, y)))
    with torch.no_grad():
        per_seq = nn.functional.cross_entropy(gpt(x).transpose(1, 2), y, reduction="none")
    assert math.sqrt(float(variance.detach())) == pytest.approx(
        stats.sem(per_seq.mean(dim=1).double().numpy()), rel=1e-5
    )
    # the PINN: a sum of three means over disjoint point sets; variances add
    pinn = convection_pinn()
    batch = convection_data(n_x=32, n_t=8, n_f=40)
    loss = convection_loss(3.0)
    value, variance = loss.with_variance(pinn, batch)
    assert torch.equal(value, loss(pinn, batch))
    squares = convection_squares(pinn, batch, 3.0)
    expected = sum(stats.sem(sq.detach().double().numpy().ravel()) ** 2 for sq in squares)
    assert float(variance.detach()) == pytest.approx(expected, rel=1e-5)


def test_a_loss_without_variance_gives_none_and_old_files_still_load(tmp_path):
    model, (x, y) = tiny_mlp()
    d = random_directions(model, 1, seed=0)
    coords = grid(5, (-1.0, 1.0), dims=1)
    plain = evaluate(model, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), (x, y), d,
                     coords, progress=False)  # fmt: skip
    assert plain.loss_stderr is None and plain.tokens is None
    named = evaluate(model, None, (x, y), d, coords, criterion="cross_entropy", progress=False)
    path = named.save(tmp_path / "land")
    back = Landscape.load(path)
    np.testing.assert_array_equal(back.loss_stderr, named.loss_stderr)
    # a file written before the standard error existed: no such array, loads with None
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "loss_stderr"}
    np.savez(path, **arrays)
    assert Landscape.load(path).loss_stderr is None


# --- a synthetic loss whose per-example noise is known ------------------------------------------


class NoisyBowl(nn.Module):
    """Per-example loss ``f(w) (1 + e_i)``: a known function ``f(w) = 0.1 + |w|^2`` times fixed
    known noise ``e_i`` (the data), so the standard error of the mean over examples ``i`` is
    exactly ``f(w) std(e) / sqrt(n)``: small at the basin floor, large on the rim."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def f(self) -> torch.Tensor:
        return 0.1 + (self.w**2).sum()


def per_example(model: NoisyBowl, batch) -> torch.Tensor:
    return model.f() * (1 + batch[0])


def bowl_loss(model: NoisyBowl, batch) -> torch.Tensor:
    return per_example(model, batch).mean()


def _bowl_stats(model, batch):
    from saddles.io.data import mean_variance

    per = per_example(model, batch)
    return per.mean(), mean_variance(per)


bowl_loss.with_variance = _bowl_stats
NOISE = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.5
UNIT = torch.eye(2, dtype=torch.float64)


def bowl_landscape(**kw) -> Landscape:
    model = NoisyBowl()
    batches = [(t,) for t in NOISE.split(256)]  # 16 batches of one-token examples, in a fixed order
    return evaluate(model, bowl_loss, batches, [UNIT[:1].reshape(2), UNIT[1:].reshape(2)],
                    grid(9, (-1.0, 1.0), dims=2), engine="sequential", progress=False,
                    **kw)  # fmt: skip


def bowl_f(points: np.ndarray) -> np.ndarray:
    return 0.1 + (points**2).sum(axis=1)


def test_stderr_matches_the_known_formula():
    land = bowl_landscape()
    e = NOISE.numpy()
    # 16 equal batches: the stratified standard error sqrt(sum_b sem_b^2) / 16
    sems = np.array([stats.sem(b) for b in np.split(e, 16)])
    expected = bowl_f(land.coords) * np.sqrt((sems**2).sum()) / 16
    np.testing.assert_allclose(land.loss_stderr, expected, rtol=1e-10)
    np.testing.assert_allclose(land.loss, bowl_f(land.coords) * (1 + e.mean()), rtol=1e-12)


def test_auto_spends_fewer_tokens_than_a_fixed_budget_of_equal_accuracy():
    auto = bowl_landscape(eval_tokens="auto", stderr_target=0.01)
    info = auto.info["data"]
    value_range = info["pilot"]["value_range"]
    target = info["stderr_target"]
    assert target == pytest.approx(0.01 * value_range)
    # accuracy: every point's standard error meets the target, and its error against the
    # known function (the noise is fixed, so the error is known too) is within 4 of them
    assert np.all(auto.loss_stderr <= target)
    assert np.all(np.abs(auto.loss - bowl_f(auto.coords)) <= 4 * target)
    # each point stopped at the first prefix meeting the target: the formula says which
    sem2 = np.array([stats.sem(b) ** 2 for b in np.split(NOISE.numpy(), 16)])
    prefixes = info["prefix_tokens"]
    assert prefixes == [256, 512, 1024, 2048, 4096]
    need = []
    for p in bowl_f(auto.coords):  # a prefix of m examples: the first m // 256 batches
        se = [p * np.sqrt(sem2[: m // 256].sum()) / (m // 256) for m in prefixes]
        need.append(next((m for m, s in zip(prefixes, se, strict=True) if s <= target),
                         prefixes[-1]))  # fmt: skip
    np.testing.assert_array_equal(auto.tokens, need)
    # the fixed budget of equal accuracy: the smallest prefix at which every point meets it
    fixed_budget = min(
        m for m in prefixes if (bowl_landscape(eval_tokens=m).loss_stderr <= target).all()
    )
    assert auto.tokens.sum() < 0.8 * fixed_budget * auto.n_points
    assert auto.tokens.min() < fixed_budget  # the basin floor stops early


def test_auto_is_resumable_and_engines_agree(tmp_path):
    full = bowl_landscape(eval_tokens="auto", run_dir=tmp_path / "a")
    chunks = sorted((tmp_path / "a" / "chunks").glob("*.npz"))
    assert len(chunks) > 2
    with np.load(chunks[0]) as z:
        assert z["values"].shape[1] == 3  # loss, its standard error, the tokens
    # an interrupted run: the landscape and half the chunks gone
    for f in [*chunks[::2], tmp_path / "a" / "landscape.npz"]:
        f.unlink()
    again = bowl_landscape(eval_tokens="auto", run_dir=tmp_path / "a", resume=True)
    np.testing.assert_array_equal(again.loss, full.loss)
    np.testing.assert_array_equal(again.tokens, full.tokens)
    np.testing.assert_array_equal(again.loss_stderr, full.loss_stderr)
    back = Landscape.load(tmp_path / "a")
    np.testing.assert_array_equal(back.tokens, full.tokens)
    model = NoisyBowl()
    batched = evaluate(model, bowl_loss, [(t,) for t in NOISE.split(256)],
                       [UNIT[:1].reshape(2), UNIT[1:].reshape(2)], grid(9, (-1.0, 1.0), dims=2),
                       engine="batched", chunk_size=16, eval_tokens="auto",
                       progress=False)  # fmt: skip
    np.testing.assert_array_equal(batched.tokens, full.tokens)
    np.testing.assert_allclose(batched.loss, full.loss, rtol=1e-12)


def test_auto_schedule_cuts_batches_into_doubling_prefixes():
    batches = [(torch.arange(10).reshape(5, 2),), (torch.arange(20, 42).reshape(11, 2),)]
    pieces, auto = auto_tokens(batches, 0.01)
    assert [q[0].shape[0] for q in pieces] == [2, 2, 1, 3, 8]
    assert auto.stage_ends == [1, 2, 4, 5]  # 16 samples: 2 (at least two), 4, 8, 16
    assert auto.tokens == [4, 8, 16, 32]
    rows = torch.cat([q[0] for q in pieces])
    assert torch.equal(
        rows, torch.cat([b[0] for b in batches])
    )  # the data in its own order, nothing lost
    with pytest.raises(ValueError, match="positive"):
        auto_tokens(batches, 0.0)


def test_auto_without_a_variance_is_a_one_line_error():
    model, (x, y) = tiny_mlp()
    d = random_directions(model, 1, seed=0)
    with pytest.raises(ValueError, match="spread of its per-example"):
        evaluate(model, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]), (x, y), d,
                 grid(3, (-1.0, 1.0), dims=1), eval_tokens="auto", progress=False)  # fmt: skip


def test_analysis_config_reads_auto_from_yaml_and_keeps_old_ids(tmp_path):
    from saddles.runs.config import AnalysisConfig

    (tmp_path / "a.yaml").write_text(
        "analysis:\n  eval_tokens: auto\n  stderr_target: 0.02\n  batch_floor: 3\n"
    )
    config = AnalysisConfig.from_yaml(tmp_path / "a.yaml")
    assert (config.eval_tokens, config.stderr_target, config.batch_floor) == ("auto", 0.02, 3)
    assert AnalysisConfig(eval_tokens=4096).eval_tokens == 4096
    for bad in ({"eval_tokens": "most"}, {"eval_tokens": 0}, {"batch_floor": 1},
                {"stderr_target": 0.0}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            AnalysisConfig(**bad)
    # the new fields at their defaults leave a configuration's identity as it was
    assert "batch_floor" not in AnalysisConfig().identity()
    assert "stderr_target" not in AnalysisConfig().identity()
    assert "batch_floor" in AnalysisConfig(batch_floor=2).identity()


def test_mse_reports_the_standard_error_of_its_per_sample_means():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(50, 3), torch.randn(50, 2)
    loss = make_loss(criterion="mse")
    value, variance = loss.with_variance(model, (x, y))
    assert torch.equal(value, loss(model, (x, y)))
    with torch.no_grad():
        per_sample = ((model(x) - y) ** 2).mean(dim=1).double().numpy()
    assert math.sqrt(float(variance.detach())) == pytest.approx(stats.sem(per_sample), rel=1e-5)
    # a criterion of the user's: its examples are unknown, so no variance is claimed
    assert not hasattr(make_loss(criterion=torch.nn.HuberLoss()), "with_variance")


def test_a_run_directory_from_before_the_stderr_resumes(tmp_path):
    import json

    model, batches = mlp_batches()
    d = random_directions(model, 2, seed=1)
    coords = grid(6, (-1.0, 1.0), dims=2)
    kw = {"criterion": "cross_entropy", "engine": "sequential", "chunk_size": 6,
          "progress": False}  # fmt: skip
    full = evaluate(model, None, batches, d, coords, run_dir=tmp_path / "r", **kw)
    # as an older saddles left it: chunks of the values alone, no columns in config.json, and
    # the run interrupted (half the chunks and the landscape missing)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    del config["columns"]
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    chunks = sorted((tmp_path / "r" / "chunks").glob("*.npz"))
    for f in chunks[::2]:
        f.unlink()
    for f in chunks[1::2]:
        with np.load(f) as z:
            values, engine = z["values"][:, :1], z["engine"]
        np.savez(f, values=values, engine=engine)
    (tmp_path / "r" / "landscape.npz").unlink()
    again = evaluate(model, None, batches, d, coords, run_dir=tmp_path / "r", resume=True, **kw)
    np.testing.assert_array_equal(again.loss, full.loss)
    old = np.zeros(coords.n_points, dtype=bool)
    for f in chunks[1::2]:
        start, stop = (int(v) for v in f.stem.split("-"))
        old[start:stop] = True
    assert np.isnan(again.loss_stderr[old]).all()  # not computed then: not claimed now
    np.testing.assert_array_equal(again.loss_stderr[~old], full.loss_stderr[~old])
