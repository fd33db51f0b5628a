"""Tests of saddles.directions against independent computations (plain torch/numpy/sklearn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_for_tests import small_cnn, tiny_mlp

from saddles import directions as D


def _filter_norms(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def test_flat_mapping_follows_named_parameters_order():
    model, _ = small_cnn()
    names, weights = D.parameters(model)
    assert names == [n for n, _ in model.named_parameters()]
    flat = D.flatten(weights)
    assert flat.numel() == sum(p.numel() for p in model.parameters())
    # parameter j occupies flat[offset_j : offset_j + numel_j], in C order
    offset = sum(w.numel() for w in weights[:2])
    assert torch.equal(flat[offset : offset + weights[2].numel()], weights[2].reshape(-1))
    back = D.unflatten(flat, weights)
    assert all(torch.equal(a, b) for a, b in zip(back, weights, strict=True))
    with pytest.raises(ValueError, match="length"):
        D.unflatten(flat[:-1], weights)


def test_filter_normalization_gives_each_filter_the_weights_filter_norm():
    model, _ = small_cnn()
    _, weights = D.parameters(model)
    dirs = D.random_directions(model, 2, seed=3, norm="filter", ignore_1d=True)
    for d in dirs.tensors:
        for dt, w in zip(d, weights, strict=True):
            if w.dim() >= 2:  # conv (4-D) and linear (2-D): one filter per slice of dim 0
                torch.testing.assert_close(_filter_norms(dt), _filter_norms(w.detach()))
            else:  # biases and BatchNorm scales/shifts are zeroed (Li et al.'s biasbn)
                assert torch.count_nonzero(dt) == 0


def test_keep_1d_normalizes_each_1d_tensor_as_one_filter():
    model, _ = small_cnn()
    _, weights = D.parameters(model)
    (d,) = D.random_directions(model, 1, seed=0, norm="filter", ignore_1d=False).tensors
    for dt, w in zip(d, weights, strict=True):
        if w.dim() == 1:
            torch.testing.assert_close(dt.norm(), w.detach().norm())


def test_layer_and_model_normalization():
    model, _ = small_cnn()
    _, weights = D.parameters(model)
    (d,) = D.random_directions(model, 1, seed=1, norm="layer").tensors
    for dt, w in zip(d, weights, strict=True):
        if w.dim() >= 2:
            torch.testing.assert_close(dt.norm(), w.detach().norm())
    (d,) = D.random_directions(model, 1, seed=1, norm="model", ignore_1d=True).tensors
    kept = [w.detach() for w in weights if w.dim() >= 2]
    torch.testing.assert_close(D.flatten(d).norm(), D.flatten(kept).norm())


def test_random_directions_are_reproducible_and_raw_gaussian_with_norm_none():
    model, _ = tiny_mlp()
    a = D.random_directions(model, 3, seed=7, norm="none", ignore_1d=False)
    b = D.random_directions(model, 3, seed=7, norm="none", ignore_1d=False)
    c = D.random_directions(model, 3, seed=8, norm="none", ignore_1d=False)
    assert all(torch.equal(x, y) for x, y in zip(a.matrix(), b.matrix(), strict=True))
    assert not torch.equal(a.matrix(), c.matrix())
    # the same seed gives the same directions in float64 (drawn in float64, then cast)
    model64, _ = tiny_mlp(dtype=torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    d64 = D.random_directions(model64, 3, seed=7, norm="filter")
    d32 = D.random_directions(model, 3, seed=7, norm="filter")
    torch.testing.assert_close(d64.matrix().float(), d32.matrix())
    # norm="none": a standard normal sample (mean ~0, std ~1 over 3 x 67 entries)
    m = a.matrix().double()
    assert abs(m.mean().item()) < 0.2 and abs(m.std().item() - 1) < 0.15
    assert a.info == {
        "kind": "random",
        "n": 3,
        "seed": 7,
        "norm": "none",
        "ignore_1d": False,
        "orthogonalize": "none",
        "n_params": 67,
    }


def test_orthonormal_option_gives_identity_gram_matrix():
    model, _ = small_cnn()
    dirs = D.random_directions(model, 5, seed=2, orthogonalize="orthonormal")
    m = dirs.matrix().double()
    np.testing.assert_allclose((m @ m.T).numpy(), np.eye(5), atol=1e-6)
    # biases/BN were zeroed before Gram-Schmidt and stay zero
    _, weights = D.parameters(model)
    for d in dirs.tensors:
        for dt, w in zip(d, weights, strict=True):
            if w.dim() <= 1:
                assert torch.count_nonzero(dt) == 0


def test_orthogonal_option_keeps_the_normalized_lengths():
    model, _ = small_cnn()
    plain = D.random_directions(model, 3, seed=4).matrix().double()
    ortho = D.random_directions(model, 3, seed=4, orthogonalize="orthogonal").matrix().double()
    gram = (ortho @ ortho.T).numpy()
    np.testing.assert_allclose(np.diag(gram), (plain.norm(dim=1) ** 2).numpy(), rtol=1e-5)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-6 * gram.max()
    # the first direction only gets its norm kept, so it is unchanged
    torch.testing.assert_close(ortho[0], plain[0], rtol=1e-6, atol=1e-6)


def test_orthonormalize_flat_vectors_and_rejects_dependent_ones():
    gen = torch.Generator().manual_seed(0)
    v = [torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(3)]
    q = torch.stack(D.orthonormalize(v))
    np.testing.assert_allclose((q @ q.T).numpy(), np.eye(3), atol=1e-12)
    # same span: the projector onto span(v) equals the one onto span(q)
    a = torch.stack(v).T
    proj = a @ torch.linalg.solve(a.T @ a, a.T)
    torch.testing.assert_close(proj, q.T @ q)
    with pytest.raises(ValueError, match="linear combination"):
        D.orthonormalize([v[0], v[1], 2 * v[0] - v[1]])


def test_normalize_is_public_and_accepts_any_parameter_shaped_direction():
    model, _ = tiny_mlp()
    _, weights = D.parameters(model)
    eigvec = [torch.ones_like(w) for w in weights]  # stands for a Hessian eigenvector
    out = D.normalize(eigvec, weights, norm="filter", ignore_1d=True)
    torch.testing.assert_close(_filter_norms(out[0]), _filter_norms(weights[0].detach()))
    assert torch.count_nonzero(out[1]) == 0
    assert all(torch.equal(e, torch.ones_like(e)) for e in eigvec)  # inputs untouched
    with pytest.raises(ValueError, match="norm must be one of"):
        D.normalize(eigvec, weights, norm="filters")


def test_interpolation_reaches_the_target_at_coordinate_one():
    model, _ = small_cnn(seed=0)
    target, _ = small_cnn(seed=1)
    dirs = D.interpolation(model, target.state_dict())  # buffers in the state dict are ignored
    assert len(dirs) == 1 and dirs.info["kind"] == "interpolation"
    for w, d, t in zip(model.parameters(), dirs[0], target.parameters(), strict=True):
        torch.testing.assert_close(w.detach() + d, t.detach())
    plane = D.interpolation(model, [target, list(small_cnn(seed=2)[0].parameters())])
    assert len(plane) == 2
    bad = dict(target.state_dict())
    del bad["0.weight"]
    with pytest.raises(ValueError, match="lacks parameter"):
        D.interpolation(model, bad)


def test_trajectory_pca_matches_sklearn_and_recovers_a_planar_path():
    sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
    model, _ = tiny_mlp()
    names, weights = D.parameters(model)
    gen = torch.Generator().manual_seed(0)
    # a curved path in the plane of two random directions (zero on 1-D parameters)
    mask = [w.dim() >= 2 for w in weights]
    u = [torch.randn(w.shape, generator=gen) * m for w, m in zip(weights, mask, strict=True)]
    v = [torch.randn(w.shape, generator=gen) * m for w, m in zip(weights, mask, strict=True)]
    ts = torch.linspace(1, 0, 12)
    ckpts = []
    for t in ts:
        ckpts.append(
            {
                n: w.detach() + 3 * t * a + (t**2) * b
                for n, w, a, b in zip(names, weights, u, v, strict=True)
            }
        )
    dirs = D.trajectory_pca(model, ckpts, n=2)
    m = dirs.matrix().double()
    np.testing.assert_allclose((m @ m.T).numpy(), np.eye(2), atol=1e-6)
    rows = np.stack(
        [D.flatten([c[n] - w.detach() for n, w in zip(names, weights, strict=True)]) for c in ckpts]
    ).astype(np.float64)
    pca = sklearn_decomposition.PCA(n_components=2).fit(rows)
    np.testing.assert_allclose(
        dirs.info["explained_variance_ratio"], pca.explained_variance_ratio_, rtol=1e-4
    )
    for ours, theirs in zip(m.numpy(), pca.components_, strict=True):
        assert abs(abs(ours @ theirs) - 1) < 1e-5  # same component up to sign
    # the path lies in the plane, so its projection reproduces it exactly
    coords = np.array(dirs.info["trajectory"])
    np.testing.assert_allclose(coords @ m.numpy(), rows, atol=1e-4)
    assert np.allclose(coords[-1], 0, atol=1e-6)  # the last checkpoint is the model itself


def test_from_tensors_accepts_every_form_and_names_the_bad_parameter():
    model, _ = tiny_mlp()
    names, weights = D.parameters(model)
    n = sum(w.numel() for w in weights)
    flat = torch.randn(2, n)
    a = D.from_tensors(model, flat)
    b = D.from_tensors(model, [D.unflatten(flat[0], weights), D.unflatten(flat[1], weights)])
    c = D.from_tensors(model, [flat[0], flat[1].numpy()])
    d = D.from_tensors(model, D.unflatten(flat[0], weights))  # a single direction
    assert len(a) == len(b) == len(c) == 2 and len(d) == 1
    assert torch.equal(a.matrix(), b.matrix()) and torch.equal(a.matrix(), c.matrix())
    wrong = D.unflatten(flat[0], weights)
    wrong[2] = torch.zeros(3, 7)
    with pytest.raises(ValueError, match=r"parameter '2.weight': shape \(3, 7\) does not match"):
        D.from_tensors(model, [wrong])
    with pytest.raises(ValueError, match="has 3 tensors but the model has 4 parameters"):
        D.from_tensors(model, [wrong[:3]])
    with pytest.raises(ValueError, match=f"length {n}"):
        D.from_tensors(model, [torch.zeros(n + 1)])
    with pytest.raises(ValueError, match=rf"shape \(k, {n}\)"):
        D.from_tensors(model, torch.zeros(2, n - 1))


def test_bad_arguments_are_named():
    model, _ = tiny_mlp()
    with pytest.raises(ValueError, match="n must be an integer from 1 to 10"):
        D.random_directions(model, 11)
    with pytest.raises(ValueError, match="orthogonalize must be one of"):
        D.random_directions(model, 2, orthogonalize="yes")
    with pytest.raises(ValueError, match="no parameters"):
        D.random_directions(torch.nn.ReLU(), 1)
    with pytest.raises(ValueError, match="at least two checkpoints"):
        D.trajectory_pca(model, [model.state_dict()])


def test_checkpoints_on_disk_are_targets_and_trajectory_points(tmp_path):
    from saddles.io.checkpoints import save_state_dict

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    others = []
    for step in (1, 2, 3):
        torch.manual_seed(step)
        other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        torch.save(other.state_dict(), tmp_path / f"step{step}.pt")
        others.append(other)
    save_state_dict(tmp_path / "folder" / "model.safetensors", others[0].state_dict())
    by_path = D.interpolation(model, tmp_path / "step1.pt")
    by_folder = D.interpolation(model, str(tmp_path / "folder"))
    by_module = D.interpolation(model, others[0])
    for a, b, c in zip(by_path[0], by_folder[0], by_module[0], strict=True):
        assert torch.equal(a, c) and torch.equal(b, c)
    paths = [tmp_path / f"step{s}.pt" for s in (1, 2, 3)]
    pca_paths = D.trajectory_pca(model, paths)
    pca_modules = D.trajectory_pca(model, others)
    assert pca_paths.info["trajectory"] == pca_modules.info["trajectory"]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        D.interpolation(model, tmp_path / "missing.pt")
