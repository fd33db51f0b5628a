"""Contracts every registered implementation must meet, like scikit-learn's ``check_estimator``.

Each section is parametrised over a registry, so a new entry is checked without a new test:

- every representation in :data:`saddles.topology.representations.REPRESENTATIONS` builds a merge
  tree whose pairing is the definition's (minima are the graph's local minima, one essential
  class per component, every other minimum dies at a saddle), whose persistence diagram is
  gudhi's for the lower-star filtration of the representation's own edge list (and gudhi's
  cubical complex for the grids it equals), unchanged by a strictly increasing change of values
  and by reordering the points (reflecting a grid);
- every Hessian estimator of :mod:`saddles.hessian` (a public function taking a
  ``SymmetricOperator`` first) matches ``numpy.linalg.eigh`` / the exact trace on a
  ``DenseOperator`` of a random symmetric matrix, for every name in ``WHICH`` and
  ``TRACE_METHODS``, reports exactly the HVPs it made, and is a function of its seed;
- every executor in :mod:`saddles.executors.registry` returns results in input order and turns
  a unit that raises into one ``UnitError`` naming that unit. Ray runs on the loopback cluster
  of 2 CPUs that conftest.py starts (its workers import the functions below from this file).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections import Counter

import gudhi
import numpy as np
import pytest
import torch

import saddles.hessian as hessian
from saddles.executors import UnitError, make_executor, map_units, registry
from saddles.hessian import DenseOperator, SymmetricOperator
from saddles.names import EXECUTORS, TRACE_METHODS, WHICH
from saddles.topology.representations import (
    GRID_REPRESENTATIONS,
    REPRESENTATIONS,
    representation_edges,
    representation_tree,
)

# =============================================================================================
# Representations
# =============================================================================================

GRID_SHAPE = (9, 11)
N_POINTS = 120

#: Grid connectivities that are a gudhi cubical complex: (the complex's keyword).
CUBICAL = {"full": "top_dimensional_cells", "faces": "vertices"}


def sample(name: str, seed: int = 0) -> dict:
    """A small landscape for representation ``name``: distinct values on a grid, or at
    scattered 2-D points (a smooth field plus noise, so there are several basins)."""
    rng = np.random.default_rng(seed)
    if name in GRID_REPRESENTATIONS:
        values = rng.random(GRID_SHAPE)
        return {"values": values, "shape": GRID_SHAPE, "coords": None}
    pts = rng.random((N_POINTS, 2))
    values = np.sin(5 * pts[:, 0]) * np.cos(4 * pts[:, 1]) + 0.1 * rng.random(N_POINTS)
    return {"values": values, "shape": None, "coords": pts}


def tree_of(name: str, s: dict):
    return representation_tree(name, s["values"], coords=s["coords"], shape=s["shape"])


def edges_of(name: str, s: dict) -> np.ndarray:
    return representation_edges(name, coords=s["coords"], shape=s["shape"])


def diagram_multiset(pairs) -> tuple[Counter, list[float]]:
    """Finite pairs with death > birth as a multiset, and the sorted essential births."""
    finite = Counter(
        (round(float(b), 12), round(float(d), 12)) for b, d in pairs if np.isfinite(d) and d > b
    )
    essential = sorted(round(float(b), 12) for b, d in pairs if np.isinf(d))
    return finite, essential


def ours(tree) -> tuple[Counter, list[float]]:
    return diagram_multiset(np.concatenate([tree.diagram(), tree.essential_diagram()]))


def gudhi_lower_star(values: np.ndarray, edges: np.ndarray) -> tuple[Counter, list[float]]:
    st = gudhi.SimplexTree()
    for v, f in enumerate(values):
        st.insert([v], filtration=float(f))
    for a, b in edges:
        st.insert([int(a), int(b)], filtration=float(max(values[a], values[b])))
    pairs = st.persistence(min_persistence=-1, persistence_dim_max=True)
    return diagram_multiset([p for dim, p in pairs if dim == 0])


def representation_params():
    """Every representation; NN-Descent's numba compilation takes tens of seconds per process."""
    return [
        pytest.param(name, marks=pytest.mark.slow) if name == "knn-approx" else name
        for name in REPRESENTATIONS
    ]


@pytest.mark.parametrize("name", representation_params())
def test_representation_pairs_minima_and_saddles_as_defined(name):
    s = sample(name)
    tree = tree_of(name, s)
    values = np.asarray(s["values"], dtype=np.float64).reshape(-1)
    n = values.size
    assert tree.n_vertices == n
    np.testing.assert_array_equal(tree.values, values)
    # Minima are exactly the vertices below all their neighbours in the representation's graph.
    edges = edges_of(name, s)
    lowest_neighbour = np.full(n, np.inf)
    np.minimum.at(lowest_neighbour, edges[:, 0], values[edges[:, 1]])
    np.minimum.at(lowest_neighbour, edges[:, 1], values[edges[:, 0]])
    np.testing.assert_array_equal(tree.minima, np.flatnonzero(values < lowest_neighbour))
    # One essential class per component; every other minimum dies once, at a saddle.
    assert tree.n_components >= 1 and len(tree.essential) == tree.n_components
    assert len(tree.pairs) == len(tree.minima) - tree.n_components
    assert len(tree.saddles) <= len(tree.pairs)
    assert set(tree.pairs[:, 1]) == set(tree.saddles)
    assert set(tree.pairs[:, 0]) | set(tree.essential[:, 0]) == set(tree.minima)
    assert (values[tree.pairs[:, 1]] > values[tree.pairs[:, 0]]).all()
    assert len(tree.minima) > 1, "the sample should have several basins under every graph"


@pytest.mark.parametrize("name", representation_params())
def test_representation_diagram_is_gudhis(name):
    """The lower-star filtration of the representation's edge list, by gudhi's simplex tree
    (for grids this also checks the edge-free grid sweep against the edge list)."""
    s = sample(name)
    tree = tree_of(name, s)
    values = np.asarray(s["values"], dtype=np.float64).reshape(-1)
    assert ours(tree) == gudhi_lower_star(values, edges_of(name, s))
    keyword = CUBICAL.get(GRID_REPRESENTATIONS.get(name, ""))
    if keyword is not None:
        cc = gudhi.CubicalComplex(**{keyword: s["values"]})
        pairs = [p for dim, p in cc.persistence(min_persistence=-1) if dim == 0]
        assert ours(tree) == diagram_multiset(pairs)


@pytest.mark.parametrize("name", representation_params())
def test_representation_depends_only_on_the_order_of_values(name):
    """A strictly increasing map of the values leaves the tree's vertices and pairs as they
    were; reordering the points (reflecting a grid through its centre) leaves the diagram."""
    s = sample(name)
    tree = tree_of(name, s)
    warped = tree_of(name, {**s, "values": np.exp(3 * s["values"]) - 7.0})
    for field in ("pairs", "essential", "minima", "saddles", "nodes", "parent"):
        np.testing.assert_array_equal(getattr(warped, field), getattr(tree, field), err_msg=field)
    if s["shape"] is not None:
        reflected = {**s, "values": np.flip(s["values"]).copy()}
    else:
        order = np.random.default_rng(1).permutation(N_POINTS)
        reflected = {**s, "values": s["values"][order], "coords": s["coords"][order]}
    assert ours(tree_of(name, reflected)) == ours(tree)


# =============================================================================================
# Hessian estimators
# =============================================================================================

DIM = 30


def estimators() -> list[str]:
    """Every public function of saddles.hessian whose first argument is an operator."""
    names = []
    for name in hessian.__all__:
        fn = getattr(hessian, name)
        if not inspect.isfunction(fn):
            continue
        first = next(iter(inspect.signature(fn).parameters.values()))
        if first.annotation in ("SymmetricOperator", SymmetricOperator):
            names.append(name)
    return sorted(names)


@pytest.fixture
def dense():
    """A random symmetric matrix (well separated extreme eigenvalues) and its spectrum."""
    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    evals = np.concatenate([[-4.0, -2.5], np.linspace(-1.0, 3.0, DIM - 4), [6.0, 8.0]])
    A = U @ np.diag(evals) @ U.T
    A = (A + A.T) / 2
    w, V = np.linalg.eigh(A)
    return A, w, V


def expected_extremes(w: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "LA":
        return w[::-1][:k]
    if which == "SA":
        return w[:k]
    assert which == "LM", f"no reference for which={which!r}: add one here"
    return w[np.argsort(-np.abs(w), kind="stable")][:k]


def check_top_eigen(A, w, V, seed):
    reports = []
    for which in WHICH:
        op = DenseOperator(A)
        r = hessian.top_eigen(op, 3, which=which, tol=1e-10, seed=seed)
        np.testing.assert_allclose(r.eigenvalues, expected_extremes(w, 3, which), atol=1e-8)
        vecs = r.vectors
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-10)
        residual = np.linalg.norm(vecs @ A - r.eigenvalues[:, None] * vecs, axis=1)
        assert (residual < 1e-6).all(), (which, residual)
        reports.append((op, r, r.eigenvalues))
    return reports


def check_trace(A, w, V, seed):
    exact = float(np.trace(A))
    reports = []
    for method in TRACE_METHODS:
        op = DenseOperator(A)
        if method == "exact":
            t = hessian.trace(op, method, seed=seed)
            assert t.value == pytest.approx(exact, abs=1e-10) and t.stderr == 0
        else:
            t = hessian.trace(op, method, 60, seed=seed)
            assert abs(t.value - exact) <= 4 * t.stderr, (method, t.value, exact, t.stderr)
            assert t.stderr > 0
        reports.append((op, t, np.array([t.value, t.stderr])))
    return reports


def check_spectral_density(A, w, V, seed):
    op = DenseOperator(A)
    sd = hessian.spectral_density(op, n_lanczos=12, n_runs=20, seed=seed)
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0, atol=1e-12)
    assert sd.nodes.min() >= w[0] - 1e-9 and sd.nodes.max() <= w[-1] + 1e-9
    for p in (0, 1, 2, 3):  # Hutchinson estimates of tr(A^p)/dim, within 4 standard errors
        per_run = sd.moments(p)
        se = per_run.std(ddof=1) / np.sqrt(len(per_run))
        assert abs(per_run.mean() - np.mean(w**p)) <= max(4 * se, 1e-10), (p, per_run.mean())
    full = DenseOperator(A)  # spanning the space, each run's nodes are the whole spectrum
    sd_full = hessian.spectral_density(full, n_lanczos=DIM, n_runs=1, seed=seed)
    np.testing.assert_allclose(np.sort(sd_full.nodes[0]), w, atol=1e-9)
    return [(op, sd, sd.nodes), (full, sd_full, sd_full.nodes)]


def check_power_iteration(A, w, V, seed):
    op = DenseOperator(A)
    r = hessian.power_iteration(op, k=2, tol=1e-12, max_iter=3000, seed=seed)
    # power iteration finds the largest magnitudes: 8, 6 here (|-4| is smaller)
    np.testing.assert_allclose(r.eigenvalues, [8.0, 6.0], rtol=1e-6)
    assert sum(len(h) for h in r.history) == r.n_hvps
    return [(op, r, r.eigenvalues)]


def check_lanczos(A, w, V, seed):
    op = DenseOperator(A)
    dec = hessian.lanczos(op, DIM, seed=seed)
    Q = dec.basis.numpy()
    np.testing.assert_allclose(Q @ Q.T, np.eye(DIM), atol=1e-10)
    np.testing.assert_allclose(dec.ritz()[0], w, atol=1e-9)
    T = np.diag(dec.alphas) + np.diag(dec.betas[:-1], 1) + np.diag(dec.betas[:-1], -1)
    np.testing.assert_allclose(Q @ A @ Q.T, T, atol=1e-9)
    return [(op, dec, dec.alphas)]


#: One check per estimator: it calls the estimator on fresh DenseOperators, asserts the answer
#: against the exact one, and returns ``(operator, result, the numbers to compare)`` per call.
ESTIMATOR_CHECKS = {
    "top_eigen": check_top_eigen,
    "trace": check_trace,
    "spectral_density": check_spectral_density,
    "power_iteration": check_power_iteration,
    "lanczos": check_lanczos,
}


@pytest.mark.parametrize("name", estimators())
def test_estimator_matches_the_exact_answer_and_reports_its_hvps(name, dense):
    assert name in ESTIMATOR_CHECKS, f"{name} takes an operator but has no contract check here"
    A, w, V = dense
    reports = ESTIMATOR_CHECKS[name](A, w, V, seed=3)
    assert reports
    for op, result, _ in reports:
        assert result.n_hvps == op.n_hvps > 0, (name, result.n_hvps, op.n_hvps)
    # A function of its inputs and seed: the same call gives the same numbers.
    again = ESTIMATOR_CHECKS[name](A, w, V, seed=3)
    for (_, _, first), (_, _, second) in zip(reports, again, strict=True):
        np.testing.assert_array_equal(first, second)


def test_the_estimators_found_are_the_package_s():
    assert estimators() == sorted(ESTIMATOR_CHECKS)


def test_estimators_accept_float32_operators(dense):
    """Each estimator runs on a float32 operator and stays close to the float64 answer."""
    A, w, _ = dense
    op = DenseOperator(torch.tensor(A, dtype=torch.float32))
    assert hessian.top_eigen(op, 1).eigenvalues[0] == pytest.approx(w[-1], rel=1e-4)
    assert hessian.trace(op, "exact").value == pytest.approx(np.trace(A), abs=1e-4)


# =============================================================================================
# Executors
# =============================================================================================

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")


def square(x):
    """The unit of work (imported by Ray's workers from this file)."""
    if x == "bad":
        raise KeyError("not a number")
    return x * x


def scaled(state, unit):
    return state * unit


def hold(payload):
    return payload


def executor_params():
    return [
        pytest.param(name, marks=needs_ray) if name == "ray" else name
        for name in registry.registered()
    ]


@pytest.fixture
def executor_name(request):
    """An executor name, with what it needs running (Ray: the module's 2-CPU cluster)."""
    if request.param == "ray":
        request.getfixturevalue("cluster")
    return request.param


def options(name: str) -> dict:
    return {"workers": 2} if name == "ray" else {}


@pytest.mark.parametrize("executor_name", executor_params(), indirect=True)
def test_executor_keeps_input_order(executor_name):
    items = list(range(11))
    assert map_units(square, items, executor_name, **options(executor_name)) == [
        i * i for i in items
    ]
    ex, owned = make_executor(executor_name, **options(executor_name))
    seen = []
    try:
        assert owned and ex.name == executor_name
        with ex.open(hold, 3, scaled) as pool:
            pool.run(range(5), lambda unit, result: seen.append((unit, result)))
            pool.run([7], lambda unit, result: seen.append((unit, result)))  # same workers
            assert pool.info["name"] == executor_name and pool.info["workers"] >= 1
    finally:
        ex.close()
    assert sorted(seen) == [(u, 3 * u) for u in (0, 1, 2, 3, 4, 7)]


@pytest.mark.parametrize("executor_name", executor_params(), indirect=True)
def test_executor_turns_a_raising_unit_into_one_unit_error(executor_name):
    with pytest.raises(UnitError, match=r"^unit 2 failed: KeyError: 'not a number'$") as info:
        map_units(square, [1, 2, "bad", 3], executor_name, **options(executor_name))
    assert isinstance(info.value.__cause__, KeyError)
    assert "\n" not in str(info.value)


def test_the_registry_holds_the_known_executors():
    assert registry.registered()[: len(EXECUTORS)] == EXECUTORS
