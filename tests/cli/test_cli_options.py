"""The CLI's choices are the library's names: built from its tuples, and importing no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from saddles import data, directions, dynamics, names, sampling
from saddles.cli import _options
from saddles.experiments import resnet
from saddles.hessian import hutchpp, hvp, krylov
from saddles.topology import graphs, mergetree, representations


def values(enum) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


@pytest.mark.parametrize(
    ("enum", "library"),
    [
        (_options.Criterion, data.CRITERIA),
        (_options.Norm, directions.NORMS),
        (_options.Orthogonalize, directions.ORTHOGONALIZE),
        (_options.Method, sampling.METHODS),
        (_options.Region, sampling.REGIONS),
        (_options.Which, krylov.WHICH),
        (_options.TraceMethod, hutchpp.TRACE_METHODS),
        (_options.HvpMethod, hvp.HVP_METHODS),
        (_options.Connectivity, graphs.CONNECTIVITIES),
        (_options.Representation, tuple(representations.REPRESENTATIONS)),
        (_options.NanPolicy, mergetree.NAN_POLICIES),
        (_options.Policy, dynamics.POLICIES),
        (_options.DType, names.FLOAT_DTYPES),
    ],
)
def test_each_choice_is_the_library_tuple(enum, library):
    assert values(enum) == tuple(library)


def test_the_copies_equal_the_library_tuples():
    from saddles.experiments.lm import PRESETS
    from saddles.landscape import ENGINES

    assert values(_options.Engine) == ENGINES
    assert values(_options.Preset) == _options.LM_PRESETS == tuple(PRESETS)


def test_library_modules_use_the_one_definition():
    assert directions.NORMS is names.NORMS and hvp.HVP_METHODS is names.HVP_METHODS
    assert resnet.DATASETS is names.DATASETS and values(_options.Dataset) == names.DATASETS


def test_a_name_added_to_the_library_appears_in_the_cli():
    enum = _options.choices("Norm", (*names.NORMS, "unit"))
    assert enum("unit").value == "unit" and values(enum)[:-1] == names.NORMS


@pytest.mark.parametrize("args", [["--help"], ["topology", "--help"]])
def test_help_imports_no_torch(args):
    code = (
        "import sys\n"
        "from saddles.cli import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


# --- the library checks the CLI maps to exit status 2 -------------------------------------------


def test_make_loss_takes_a_criterion_name():
    x, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    net = torch.nn.Identity()
    ce = data.make_loss(criterion="cross_entropy")
    assert torch.allclose(ce(net, (x, y)), torch.nn.functional.cross_entropy(x, y))
    mse = data.make_loss(criterion="mse")
    assert torch.allclose(mse(net, (x, x + 1)), torch.tensor(1.0))
    assert ce.__qualname__ != mse.__qualname__  # run directories tell them apart
    with pytest.raises(ValueError, match="criterion must be one of"):
        data.make_loss(criterion="hinge")


def test_resolve_device_names_the_problem():
    assert data.resolve_device("cpu") == torch.device("cpu") and data.resolve_device(None) is None
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        data.resolve_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            data.resolve_device("cuda")


def test_hessian_operator_refuses_nan_weights():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias[1] = float("nan")
    loss = data.make_loss(criterion="mse")
    with pytest.raises(ValueError, match="parameter 'bias' holds NaN"):
        hvp.HessianOperator(net, loss, (torch.randn(4, 3), torch.randn(4, 2)))
