"""`saddles dynamics config.yaml`: every checkpoint of a run, incrementally; the same numbers
as `saddles run` on one checkpoint; Hugging Face folders; one-line refusals with exit 2."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

import saddles.runs.series as dyn
from saddles.cli import app
from saddles.io.checkpoints import save_state_dict

runner = CliRunner()

FACTORY = """
import torch

def make_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
"""
ANALYSIS = """
analysis:
  resolution: 7
  representations: [grid-full, knn]
  hessian_top_k: 2
  trace_matvecs: 9
  density_lanczos: 8
  noise_points: 8
"""


def make_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


def setup_files(tmp_path, names=("step_000000.pt", "checkpoint-5.safetensors", "step20.pt")):
    """netdef.py, batch.pt, and a short SGD run saved under ``names`` (steps from the names)."""
    (tmp_path / "netdef.py").write_text(FACTORY)
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir(exist_ok=True)
    torch.manual_seed(0)
    net = make_net()
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    torch.save((x, y), tmp_path / "batch.pt")
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    steps = {int("".join(c for c in n.split(".")[0] if c.isdigit())): n for n in names}
    for step in range(max(steps) + 1):
        if step in steps:
            name = steps[step]
            if name.endswith(".safetensors"):
                save_state_dict(ckdir / name, net.state_dict())
            else:
                torch.save(net.state_dict(), ckdir / name)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return ckdir


def write_config(tmp_path, extra="", analysis=ANALYSIS, name="dyn.yaml"):
    text = textwrap.dedent("""
        name: tiny
        model: netdef.py:make_net
        checkpoints: ckpts
        data: batch.pt
        criterion: cross_entropy
        out: out
    """) + extra + textwrap.dedent(analysis)  # fmt: skip
    path = tmp_path / name
    path.write_text(text)
    return path


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_dynamics_writes_the_table_and_report_and_reruns_only_new(tmp_path, monkeypatch):
    setup_files(tmp_path)
    monkeypatch.chdir("/")  # paths are read relative to the file
    calls = []
    real = dyn.analyze
    monkeypatch.setattr(dyn, "analyze", lambda *a, **k: calls.append(k["name"]) or real(*a, **k))
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    rows = read(out / "dynamics.csv")
    assert [int(r["step"]) for r in rows] == [0, 0, 5, 5, 20, 20]
    assert {r["representation"] for r in rows} == {"grid-full", "knn"}
    assert {r["subspace"] for r in rows} == {"2d"} and {r["direction"] for r in rows} == {"random"}
    assert {"n_saddles", "average_persistence_relative", "hessian_trace", "n_params"} <= set(
        rows[0]
    )
    assert int(rows[0]["n_params"]) == 51 and len(calls) == 3
    html = (out / "report.html").read_text()
    assert "<img" in html and "spearman" in html
    # n_saddles is drawn, or (the same at every checkpoint) said once as a constant.
    drawn = (out / "figures" / "dynamics-n_saddles.png").exists()
    assert ("n_saddles against the step" in html) == drawn
    assert drawn or "Constant at every checkpoint" in html and "n_saddles = " in html
    assert "policy: fixed" in (out / "config.yaml").read_text()
    # A new checkpoint: only it is analyzed; the old rows are unchanged.
    torch.manual_seed(3)
    torch.save(make_net().state_dict(), tmp_path / "ckpts" / "step40.pt")
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    again = read(out / "dynamics.csv")
    assert len(calls) == 4 and calls[-1] == "tiny@40"

    # (the distance to the last checkpoint's diagram moves with the last checkpoint)
    def fixed(rs):
        return [{k: v for k, v in r.items() if not k.startswith("bottleneck_to_last")} for r in rs]

    assert fixed(again[:6]) == fixed(rows) and [int(r["step"]) for r in again[6:]] == [40, 40]
    # steps: selects; several subspaces get their own rows.
    sub = """
    analysis:
      resolution: 7
      representations: [grid-full]
      hessian: false
      noise_points: 0
      subspaces:
        2d: {}
        3d: {n_directions: 3, sampling: sobol, n_points: 64, representations: [knn]}
    """
    path = write_config(tmp_path, "steps: [5, 20]\n", analysis=sub, name="sub.yaml")
    result = runner.invoke(app, ["dynamics", str(path), "--quiet", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "s" / "dynamics.csv")
    assert [(int(r["step"]), r["subspace"]) for r in rows] == [
        (5, "2d"), (5, "3d"), (20, "2d"), (20, "3d")
    ]  # fmt: skip


def test_a_dynamics_row_equals_saddles_run_on_that_checkpoint(tmp_path, monkeypatch):
    setup_files(tmp_path, names=("step7.pt",))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    run_yaml = textwrap.dedent("""
        name: tiny
        model: netdef.py:make_net
        checkpoint: ckpts/step7.pt
        data: batch.pt
        criterion: cross_entropy
        out: single
    """) + textwrap.dedent(ANALYSIS) + "  directions: [random]\n"  # fmt: skip
    (tmp_path / "run.yaml").write_text(run_yaml)
    result = runner.invoke(app, ["run", str(tmp_path / "run.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    single = {r["representation"]: r for r in read(tmp_path / "single" / "tiny" / "metrics.csv")}
    dynamic = {r["representation"]: r for r in read(tmp_path / "out" / "dynamics.csv")}
    assert set(single) == set(dynamic) == {"grid-full", "knn"}
    for rep, expected in single.items():
        got = dynamic[rep]
        compared = [k for k in expected if k != "model"]
        assert len(compared) > 50
        for key in compared:
            assert expected[key] == got[key], (rep, key, expected[key], got[key])


class Wrapped(torch.nn.Module):
    """A wrapper (entries ``model.*``) around a net with an input and output weight tied."""

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.embed = torch.nn.Embedding(5, 3)
        self.model.head = torch.nn.Linear(3, 5, bias=False)
        self.model.head.weight = self.model.embed.weight


def test_hugging_face_folders_are_found_and_loaded(tmp_path):
    for step, name in ((10, "step10"), (2, "revision-a")):
        folder = tmp_path / name
        folder.mkdir()
        torch.manual_seed(step)
        inner = Wrapped().model
        state = {"embed.weight": inner.embed.weight.detach()}  # the tied head is left out
        save_state_dict(folder / "model.safetensors", state)
        (folder / "config.json").write_text("{}")
    (tmp_path / "revision-a" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (tmp_path / "notes").mkdir()  # no weights: not a checkpoint
    ckpts = dyn.discover_checkpoints(tmp_path)
    assert [(c.name, c.step) for c in ckpts] == [("revision-a", 2), ("step10", 10)]
    model = dyn.load_state(Wrapped(), ckpts[1])
    torch.manual_seed(10)
    expected = Wrapped().model.embed.weight
    assert torch.equal(model.model.embed.weight, expected)
    assert torch.equal(model.model.head.weight, expected)
    with pytest.raises(ValueError, match="does not match"):
        dyn.load_state(make_net(), ckpts[1])
    assert [c.step for c in dyn.select_steps(ckpts, [10])] == [10]
    with pytest.raises(ValueError, match=r"no checkpoint at step\(s\) \[3\]"):
        dyn.select_steps(ckpts, [3])


@pytest.mark.parametrize(
    ("extra", "setup", "words"),
    [
        ("colour: red\n", None, ["unknown key", "colour"]),
        ("steps: [5, 99]\n", None, ["steps: no checkpoint at step(s) [99]"]),
        ("policy: pcb\n", None, ["policy", "pcb"]),
        ("", "empty", ["checkpoints: no checkpoints"]),
        ("", "duplicate", ["checkpoints: several checkpoints claim step(s) [5]"]),
        ("", "directions", ["directions", "policy"]),
    ],
)
def test_bad_inputs_are_one_line_errors_with_exit_2(tmp_path, extra, setup, words):
    ckdir = setup_files(tmp_path)
    analysis = ANALYSIS
    if setup == "empty":
        for f in ckdir.iterdir():
            f.unlink()
    elif setup == "duplicate":
        torch.save(make_net().state_dict(), ckdir / "ckpt-x.pt")
        (ckdir / "ckpt-x.json").write_text(json.dumps({"step": 5}))
    elif setup == "directions":
        analysis = ANALYSIS + "  directions: [hessian]\n"
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path, extra, analysis))])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])


def test_run_level_keys_work_in_dynamics_too(tmp_path):
    """params, inputs_key, targets_key and batch_size, as `saddles run` takes them."""
    setup_files(tmp_path, names=("step_0.pt", "step_3.pt"))
    x, y = torch.load(tmp_path / "batch.pt")
    torch.save({"x": x, "y": y}, tmp_path / "dict.pt")
    extra = 'inputs_key: x\ntargets_key: y\nbatch_size: 20\nparams: {exclude: ["0.*"]}\n'
    path = write_config(tmp_path, extra)
    path.write_text(path.read_text().replace("data: batch.pt", "data: dict.pt"))
    result = runner.invoke(app, ["dynamics", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out" / "dynamics.csv")
    assert [int(r["step"]) for r in rows] == [0, 0, 3, 3]
    assert {int(r["hessian_n_params"]) for r in rows} == {6 * 3 + 3}  # the second layer only
    assert "params" in (tmp_path / "out" / "config.yaml").read_text()
    # A key of `saddles run` only is refused by name.
    bad = write_config(tmp_path, "checkpoint: ckpts/step_0.pt\n", name="bad.yaml")
    result = runner.invoke(app, ["dynamics", str(bad)])
    assert result.exit_code == 2 and "checkpoint:" in result.stderr, result.output


def test_a_duplicated_revision_is_named_marked_and_kept_out_of_the_trends(tmp_path):
    """A suite whose step-30 'revision' serves the weights of step 20 (as mislabelled public
    branches do): checkpoints.csv and every row say so, the command warns, the report's
    trends leave it out, and --allow-duplicates keeps it."""
    import shutil

    setup_files(tmp_path)
    shutil.copy(tmp_path / "ckpts" / "step20.pt", tmp_path / "ckpts" / "step30.pt")
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), "--quiet"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: 1 of 4 checkpoints" in text and "step 20 = step30" in text
    out = tmp_path / "out"
    suite = read(out / "checkpoints.csv")
    assert [(r["step"], r["duplicate_of"]) for r in suite] == [
        ("0", ""), ("5", ""), ("20", "step30"), ("30", "")
    ]  # fmt: skip
    assert suite[2]["sha256"] == suite[3]["sha256"] != suite[1]["sha256"]
    rows = read(out / "dynamics.csv")
    assert {r["duplicate_of"] for r in rows if r["step"] == "20"} == {"step30"}
    assert {r["duplicate_of"] for r in rows if r["step"] != "20"} == {""}
    html = (out / "report.html").read_text()
    assert "left out of the trends" in html
    again = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), "--quiet",
                                "--allow-duplicates"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "kept in the trends" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--executor", "ray", "--workers", "0"], "--workers: must be a positive integer, not 0"),
        (["--workers", "2"], "--executor: --workers and --gpus-per-worker need --executor ray"),
        (
            ["--executor", "ray", "--gpus-per-worker", "-1"],
            "--gpus-per-worker: must be >= 0, not -1.0",
        ),
    ],
)
def test_bad_execution_options_are_one_line_errors_with_exit_2(tmp_path, options, words):
    setup_files(tmp_path)
    result = runner.invoke(app, ["dynamics", str(write_config(tmp_path)), *options])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {words}"] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
