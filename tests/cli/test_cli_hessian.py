"""End-to-end tests of `saddles hessian`: files in, numbers and figures out, checked against the
exact Hessian of the checkpoint's weights."""

from __future__ import annotations

import json
import re
import shlex
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from saddles.cli import app

F64 = torch.float64
MODULE = "hessian_cli_models"

FACTORIES = textwrap.dedent(
    """
    import torch

    def mlp():
        torch.manual_seed(123)  # deliberately not the checkpoint's weights
        return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))

    def dropout_mlp():
        return torch.nn.Sequential(
            torch.nn.Linear(4, 6), torch.nn.Dropout(0.5), torch.nn.Tanh(), torch.nn.Linear(6, 3)
        )

    def not_a_model():
        return 42

    def squared_error(model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()
    """
)


class Opaque:  # an arbitrary object a safe checkpoint loader must refuse
    pass


@pytest.fixture()
def files(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "ckpt.pt")
    save_file(state, str(tmp_path / "ckpt.safetensors"))
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    torch.save((x, y), tmp_path / "data.pt")
    targets = torch.randn(40, 3)
    np.savez(tmp_path / "regression.npz", x=x.numpy(), y=targets.numpy())
    return tmp_path, model, x, y, targets


def exact_hessian(model, loss_of_output):
    """Float64 Hessian of the two-layer tanh network, written by hand, at the model's weights."""
    theta = torch.cat([p.detach().to(F64).reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def f(t):
        w0, b0, w2, b2 = (
            piece.view(s)
            for piece, s in zip(t.split([s.numel() for s in shapes]), shapes, strict=True)
        )
        return loss_of_output(lambda x: torch.tanh(x @ w0.T + b0) @ w2.T + b2)

    return torch.func.hessian(f)(theta).numpy()


def plain(text: str) -> str:
    """Output without the error panel's box drawing and line wrapping."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", text).split())


def run(command: str):
    """Invoke `saddles hessian` with a shell-like argument string."""
    result = CliRunner().invoke(app, ["hessian", *shlex.split(command)])
    return result, result.output


def test_hessian_command_matches_exact_hessian(files):
    tmp, model, x, y, _ = files
    xs = x.to(F64)
    H = exact_hessian(model, lambda net: torch.nn.functional.cross_entropy(net(xs), y))
    evals = np.linalg.eigvalsh(H)
    result, out = run(
        f"--model {MODULE}:mlp --checkpoint {tmp}/ckpt.pt --data {tmp}/data.pt --float64 "
        f"--top-k 3 --trace-method exact --n-lanczos 20 --out {tmp}/out"
    )
    assert result.exit_code == 0, out
    report = json.loads((tmp / "out" / "hessian.json").read_text())
    np.testing.assert_allclose(report["eigen"]["eigenvalues"], evals[::-1][:3], rtol=1e-6)
    assert report["trace"]["value"] == pytest.approx(np.trace(H), rel=1e-10)
    assert report["dim"] == H.shape[0] == sum(p.numel() for p in model.parameters())
    assert report["dtype"] == "float64" and report["eigen"]["n_hvps"] > 0
    assert all(report["eigen"]["converged"])
    density = report["density"]
    assert np.trapezoid(density["density"], density["grid"]) == pytest.approx(1.0, abs=1e-9)
    for name in ("density.png", "density_histogram.png", "eigenvalues.png"):
        png = (tmp / "out" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert f"{evals[-1]:.6g}" in out and "trace =" in out

    # The same weights from safetensors, the default (hutch++) trace, in float32.
    result, out = run(
        f"--model {MODULE}:mlp --checkpoint {tmp}/ckpt.safetensors --data {tmp}/data.pt "
        f"--top-k 1 --out {tmp}/out32"
    )
    assert result.exit_code == 0, out
    report = json.loads((tmp / "out32" / "hessian.json").read_text())
    assert report["eigen"]["eigenvalues"][0] == pytest.approx(evals[-1], rel=1e-4)
    trace = report["trace"]
    assert trace["method"] == "hutch++" and trace["n_matvecs"] == 99 and trace["stderr"] >= 0
    assert abs(trace["value"] - np.trace(H)) <= 4 * trace["stderr"] + 1e-4 * abs(np.trace(H))


def test_npz_data_custom_loss_filter_and_batches(files):
    tmp = files[0]
    common = (
        f"--model {MODULE}:mlp --checkpoint {tmp}/ckpt.pt --data {tmp}/regression.npz "
        "--float64 --top-k 2 --n-lanczos 10"
    )
    result, out = run(f"{common} --criterion mse --out {tmp}/a")
    assert result.exit_code == 0, out
    result, out = run(f"{common} --loss {MODULE}:squared_error --batch-size 7 --out {tmp}/b")
    assert result.exit_code == 0, out
    a = json.loads((tmp / "a" / "hessian.json").read_text())["eigen"]["eigenvalues"]
    b = json.loads((tmp / "b" / "hessian.json").read_text())["eigen"]["eigenvalues"]
    np.testing.assert_allclose(a, b, rtol=1e-9)  # MSE criterion == the same loss, any batching
    result, out = run(f"{common} --criterion mse --params 0.weight,2.weight --out {tmp}/c")
    assert result.exit_code == 0, out
    report = json.loads((tmp / "c" / "hessian.json").read_text())
    assert report["parameters"] == ["0.weight", "2.weight"] and report["dim"] == 24 + 18


def test_dropout_in_train_mode_is_reported(files):
    tmp = files[0]
    common = f"--model {MODULE}:dropout_mlp --data {tmp}/data.pt --out {tmp}/o"
    result, out = run(f"{common} --train")
    assert result.exit_code == 1 and "not deterministic" in out and "Dropout" in out
    result, out = run(f"{common} --top-k 1 --n-lanczos 5")
    assert result.exit_code == 0, out  # eval mode (the default) switches dropout off


def test_bad_inputs_are_explained(files):
    tmp = files[0]
    torch.save({"0.weight": torch.zeros(6, 4), "evil": Opaque()}, tmp / "pickled.pt")
    torch.save({"0.weight": torch.zeros(2, 2)}, tmp / "wrong.pt")
    torch.save({"x": torch.zeros(3)}, tmp / "dict_data.pt")  # a dict batch stays a dict
    torch.save(["not a tensor"], tmp / "list_data.pt")
    (tmp / "data.csv").write_text("1,2\n")
    mlp = f"--model {MODULE}:mlp"
    data = f"--data {tmp}/data.pt --out {tmp}/o"
    cases = [
        (f"--model nocolon {data}", "expected module:function"),
        (f"--model no_such_module_xyz:f {data}", "cannot import"),
        (f"--model {MODULE}:missing {data}", "has no 'missing'"),
        (f"--model {MODULE}:not_a_model {data}", "not a torch.nn.Module"),
        (f"{mlp} --checkpoint {tmp}/pickled.pt {data}", "refused"),
        (f"{mlp} --checkpoint {tmp}/wrong.pt {data}", "does not match"),
        (f"{mlp} --checkpoint {tmp}/nope.pt {data}", "no such file"),
        (f"{mlp} --data {tmp}/data.csv", "unsupported data file"),
        (f"{mlp} --data {tmp}/dict_data.pt", "needs the keys ['inputs', 'targets']"),
        (f"{mlp} --data {tmp}/list_data.pt", "tuple/list/dict of tensors"),
        (f"{mlp} --criterion mse --loss {MODULE}:squared_error {data}", "not both"),
        (f"{mlp} --params 0.weight,bogus {data}", "unknown parameter"),
        (f"{mlp} --trace-method median {data}", "median"),
    ]
    for command, message in cases:
        result, out = run(command)
        assert result.exit_code != 0, command
        assert message in plain(out), (command, out)


def test_progress_and_the_record_an_analysis_builds_its_metrics_from(files):
    """Each stage is announced on stderr (not with --quiet); the defaults are AnalysisConfig's,
    and hessian.json is the record whose columns an analysis's Hessian metrics are."""
    from saddles.io.data import make_loss
    from saddles.runs.analyze import hessian_metrics, hessian_scalars
    from saddles.runs.config import AnalysisConfig

    tmp, model, x, y, _ = files
    common = f"--model {MODULE}:mlp --checkpoint {tmp}/ckpt.pt --data {tmp}/data.pt"
    result = CliRunner().invoke(app, ["hessian", *shlex.split(f"{common} --out {tmp}/a")])
    assert result.exit_code == 0, result.output
    for stage in ("top eigenpairs", "trace", "density"):
        assert f"{stage}: started" in result.stderr
        assert re.search(rf"{stage}: done in [\d.]+ s, \d+ HVPs", result.stderr), result.stderr
    assert "started" not in result.stdout
    quiet = CliRunner().invoke(app, ["hessian", *shlex.split(f"{common} --out {tmp}/b -q")])
    assert quiet.exit_code == 0 and "started" not in quiet.stderr
    report = json.loads((tmp / "a" / "hessian.json").read_text())
    config = AnalysisConfig(directions=["random"])
    assert len(report["eigen"]["eigenvalues"]) == config.hessian_top_k
    assert report["trace"]["n_matvecs"] <= config.trace_matvecs
    assert report["density"]["n_lanczos"] == min(config.density_lanczos, report["dim"])
    # the analysis computes the same numbers from the same builder (3 * dim caps its matvecs)
    scalars, _, _ = hessian_metrics(model, make_loss(criterion="cross_entropy"), (x, y),
                                    config, torch.float32)  # fmt: skip
    from_file = hessian_scalars(report)
    assert set(from_file) == set(scalars)
    np.testing.assert_allclose(from_file["top_eigenvalues"], scalars["top_eigenvalues"],
                               rtol=1e-5)  # fmt: skip
    assert from_file["n_params"] == scalars["n_params"] == report["dim"]


def test_a_memory_budget_bounds_the_krylov_basis_and_keeps_the_eigenvalues(files):
    """--memory (and AnalysisConfig.hessian_memory) caps the Lanczos basis: the run restarts
    within it, says so, and finds the exact top eigenvalues all the same."""
    from saddles.io.data import make_loss
    from saddles.runs.analyze import hessian_metrics
    from saddles.runs.config import AnalysisConfig

    tmp, model, x, y, _ = files
    xs = x.to(F64)
    H = exact_hessian(model, lambda net: torch.nn.functional.cross_entropy(net(xs), y))
    top = np.linalg.eigvalsh(H)[::-1][:3]
    dim = H.shape[0]
    common = (f"--model {MODULE}:mlp --checkpoint {tmp}/ckpt.pt --data {tmp}/data.pt --float64 "
              f"--top-k 3 --n-lanczos 20")  # fmt: skip
    result = CliRunner().invoke(app, ["hessian", *shlex.split(
        f"{common} --memory {8 * dim * 11} --tol 1e-9 --out {tmp}/m")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "thick restart within 8 basis vectors" in result.stderr
    report = json.loads((tmp / "m" / "hessian.json").read_text())
    assert report["eigen"]["restarts"] > 0 and all(report["eigen"]["converged"])
    assert report["density"]["max_basis"] == 11
    np.testing.assert_allclose(report["eigen"]["eigenvalues"], top, rtol=1e-8)
    bad = CliRunner().invoke(app, ["hessian", *shlex.split(f"{common} --memory lots --out o")])
    assert bad.exit_code == 2 and "--memory" in plain(bad.output)
    config = AnalysisConfig(directions=["random"], hessian_top_k=3, density_lanczos=20,
                            hessian_memory=f"{4 * dim * 11}B")  # fmt: skip
    assert (
        config.hessian_memory == 4 * dim * 11
        and config.short_id()
        != AnalysisConfig(directions=["random"], hessian_top_k=3, density_lanczos=20).short_id()
    )
    scalars, _, eig = hessian_metrics(model, make_loss(criterion="cross_entropy"), (x, y), config,
                                      torch.float32)  # fmt: skip
    assert eig.restarts > 0 and "thick restart" in eig.strategy
    np.testing.assert_allclose(scalars["top_eigenvalues"], top, rtol=1e-4)
