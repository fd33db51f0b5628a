"""saddles.hessian as a package: each module's examples run, and no module imports what it
must not (the algorithms depend on the operator, never the other way round).
"""

from __future__ import annotations

import pytest

from saddles.hessian import DenseOperator, HessianOperator

HESSIAN_MODULES = ("operator", "random_vectors", "hvp", "krylov", "power", "hutchpp", "slq")


@pytest.mark.parametrize("name", [m for m in HESSIAN_MODULES if m not in ("random_vectors", "hvp")])
def test_module_examples_hold(name):
    """The doctest in each algorithm's docstring: the exact answer on a small DenseOperator."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"saddles.hessian.{name}"))
    assert result.attempted > 0 and result.failed == 0


def test_modules_import_only_what_they_may():
    """The algorithms depend on the operator, never the other way round, and no algorithm
    depends on the Hessian operator: imports anywhere in a module (inside functions and under
    TYPE_CHECKING too). The operators carry no analysis methods; those are free functions."""
    import ast
    import importlib

    allowed = {
        "operator": set(),
        "random_vectors": set(),
        "hvp": {"operator", "random_vectors"},
        "krylov": {"operator", "random_vectors"},
        "power": {"operator", "random_vectors"},
        "hutchpp": {"operator", "random_vectors"},
        "slq": {"operator", "random_vectors", "krylov"},
    }
    for name in HESSIAN_MODULES:
        path = importlib.import_module(f"saddles.hessian.{name}").__file__
        tree = ast.parse(open(path, encoding="utf-8").read())
        imported = {
            node.module.split(".")[2]
            for node in ast.walk(tree)  # anywhere, not only at the top level
            if isinstance(node, ast.ImportFrom)
            and node.module is not None
            and node.module.startswith("saddles.hessian.")
        }
        assert imported <= allowed[name], (name, imported - allowed[name])
    from saddles.hessian import SymmetricOperator

    for cls in (SymmetricOperator, DenseOperator, HessianOperator):
        for analysis in ("top_eigen", "trace", "spectral_density", "power_iteration", "lanczos"):
            assert not hasattr(cls, analysis), (cls.__name__, analysis)
