"""`saddles compare`: finished runs of MLPs of three widths related to their parameter count;
the numbers are those of `relations.correlate` on the rows; differing settings are named."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app
from saddles.runs.analyze import AnalysisConfig
from saddles.runs.compare import compare_runs, load_runs, setting_warnings
from saddles.runs.relate import correlate
from saddles.runs.series import analyze_checkpoints

runner = CliRunner()

FACTORY = """
import torch

def _mlp(width):
    torch.manual_seed(width)
    return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, 3))

def make_w4():
    return _mlp(4)

def make_w8():
    return _mlp(8)

def make_w16():
    return _mlp(16)
"""
N_PARAMS = {4: 4 * 4 + 4 + 4 * 3 + 3, 8: 8 * 4 + 8 + 8 * 3 + 3, 16: 16 * 4 + 16 + 16 * 3 + 3}


def make_runs(tmp_path, widths=(4, 8, 16), resolution=None):
    """One `saddles run` folder per width (random initializations, no Hessian)."""
    (tmp_path / "nets.py").write_text(FACTORY)
    torch.manual_seed(0)
    torch.save((torch.randn(32, 4), torch.randint(0, 3, (32,))), tmp_path / "batch.pt")
    dirs = []
    for w in widths:
        res = (resolution or {}).get(w, 7)
        text = textwrap.dedent(f"""
            name: w{w}
            model: nets.py:make_w{w}
            data: batch.pt
            criterion: cross_entropy
            out: runs/w{w}
            analysis:
              directions: [random]
              resolution: {res}
              representations: [grid-full, knn]
              hessian: false
              noise_points: 0
        """)
        (tmp_path / f"w{w}.yaml").write_text(text)
        result = runner.invoke(app, ["run", str(tmp_path / f"w{w}.yaml"), "--quiet"])
        assert result.exit_code == 0, result.output
        dirs.append(tmp_path / "runs" / f"w{w}")
    return dirs


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_compare_relates_runs_to_their_size_like_correlate(tmp_path):
    dirs = make_runs(tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", *map(str, dirs), "--out", str(out), "--n-boot", "200", "--n-perm", "50"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    table = read(out / "compare.csv")
    assert {r["y"] for r in table} == {"n_params"} and {r["subspace"] for r in table} == {"2d"}
    assert (out / "report.html").exists() and (out / "power_laws.csv").exists()
    row = next(r for r in table if r["x"] == "average_persistence"
               and r["representation"] == "grid-full")  # fmt: skip
    per_run = [read(d / f"w{w}" / "metrics.csv") for d, w in zip(dirs, (4, 8, 16), strict=True)]
    x = [float(next(r for r in rows if r["representation"] == "grid-full")
                    ["average_persistence"]) for rows in per_run]  # fmt: skip
    y = [N_PARAMS[w] for w in (4, 8, 16)]
    direct = correlate(np.array(x), np.array(y, dtype=float), "average_persistence",
                       "n_params", n_boot=200, n_perm=50)  # fmt: skip
    assert float(row["spearman"]) == direct.spearman
    assert float(row["pearson"]) == direct.pearson
    assert float(row["spearman_p"]) == direct.spearman_p and int(row["n"]) == 3
    # Holm over the whole table.
    from saddles.runs.relate import adjust_pvalues

    p = np.array([float(r["spearman_p"]) for r in table])
    holm = adjust_pvalues(p)
    got = np.array([float(r["spearman_p_holm"]) for r in table])
    assert np.allclose(got[np.isfinite(holm)], holm[np.isfinite(holm)])
    laws = read(out / "power_laws.csv")
    fit = next(r for r in laws if r["metric"] == "average_persistence"
               and r["representation"] == "grid-full")  # fmt: skip
    assert fit["sizes"] == str(sorted(y)) and "c fixed at 0" in fit["note"]


def test_differing_settings_warn_by_name_and_value(tmp_path):
    dirs = make_runs(tmp_path, resolution={16: 9})
    result = runner.invoke(
        app,
        [
            "compare",
            *map(str, dirs),
            "--out",
            str(tmp_path / "c"),
            "--n-boot",
            "0",
            "--n-perm",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "resolution" in warnings[0] and "w4=7" in warnings[0] and "w16=9" in warnings[0]
    runs = load_runs(dirs)
    assert setting_warnings(runs) == [warnings[0].removeprefix("warning: ")]


def test_keys_from_a_meta_table_and_the_configuration(tmp_path):
    dirs = make_runs(tmp_path)
    meta = tmp_path / "meta.csv"
    meta.write_text("run,flops\nw4,10\nw8,30\nw16,20\n")
    result = runner.invoke(app, ["compare", *map(str, dirs), "--by", "flops", "--meta",
                                 str(meta), "--out", str(tmp_path / "m"), "--n-boot", "0",
                                 "--n-perm", "10", "--metric", "n_minima"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = read(tmp_path / "m" / "compare.csv")
    assert {(r["x"], r["y"]) for r in table} == {("n_minima", "flops")}
    runs = load_runs(dirs)
    assert compare_runs(runs, "resolution", n_boot=0, n_perm=10).by == "resolution"
    for by, word in (("nothing_here", "no value"), ("representation", "one value")):
        result = runner.invoke(app, ["compare", *map(str, dirs), "--by", by,
                                     "--out", str(tmp_path / "x")])  # fmt: skip
        assert result.exit_code == 2 and word in result.stderr, result.stderr
    result = runner.invoke(app, ["compare", str(tmp_path / "nowhere"), str(dirs[0])])
    assert result.exit_code == 2 and "no run folder" in result.stderr


def make_dynamics(tmp_path, width, steps=(0, 4, 9), layout="long"):
    torch.manual_seed(width)
    net = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))
    ckdir = tmp_path / f"ck{width}"
    ckdir.mkdir(parents=True)
    for s in steps:
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(0.9)
        torch.save(net.state_dict(), ckdir / f"step{s}.pt")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    data = (x, torch.sin(x[:, :1]))

    def mse(model, batch):
        return ((model(batch[0]) - batch[1]) ** 2).mean()

    def factory():
        return torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.Tanh(),
                                   torch.nn.Linear(width, 1))  # fmt: skip

    cfg = AnalysisConfig(resolution=7, representations=["grid-full"], hessian=False,
                         noise_points=0)  # fmt: skip
    out = tmp_path / f"dyn{width}{layout}"
    analyze_checkpoints(factory, ckdir, mse, data, cfg, out, layout=layout, progress=False)
    return out


def test_dynamics_runs_use_their_last_step_or_the_one_chosen(tmp_path):
    dirs = [make_dynamics(tmp_path, w) for w in (3, 5, 9)]
    runs = load_runs(dirs)
    assert {r.step for r in runs} == {9} and runs[0].rows[0]["n_params"] == 3 * 3 + 3 + 3 + 1
    assert {r.step for r in load_runs(dirs, step=4)} == {4}
    result = runner.invoke(
        app,
        [
            "compare",
            *map(str, dirs),
            "--step",
            "4",
            "--out",
            str(tmp_path / "c"),
            "--n-boot",
            "0",
            "--n-perm",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {r["subspace"] for r in read(tmp_path / "c" / "compare.csv")} == {"2d"}
    result = runner.invoke(app, ["compare", *map(str, dirs), "--step", "5"])
    assert result.exit_code == 2 and "no checkpoint at step 5" in result.stderr
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs(runs[:1])
    # The wide layout (one row per checkpoint, as the experiments write it) reads the same.
    (wide,) = load_runs([make_dynamics(tmp_path / "w", 3, steps=(0, 4), layout="wide")])
    assert wide.step == 4 and [r["representation"] for r in wide.rows] == ["grid-full"]
    assert wide.rows[0]["subspace"] == "2d" and wide.rows[0]["direction"] == "random"
    assert wide.rows[0]["n_saddles"] >= 0 and wide.rows[0]["n_params"] == 16


def test_every_setting_that_changes_the_numbers_is_compared():
    from saddles.runs.compare import Run

    base = AnalysisConfig(resolution=7).to_dict()
    old = {k: v for k, v in base.items() if k != "eval_tokens"}  # written before it existed

    def run(name, run_level=None, **changed):
        settings = {**(run_level or {}), **base, **changed}
        return Run(name, Path(name), "run", [], {"2d": settings})

    same = [run("a"), run("b", executor="ray", workers=4), Run("c", Path("c"), "run", [],
                                                                 {"2d": old})]  # fmt: skip
    assert setting_warnings(same) == []  # where chunks run changes no number
    for key, value in [("eval_tokens", 64), ("noise_points", 0), ("trace_matvecs", 9),
                       ("hessian_top_k", 2), ("density_lanczos", 10), ("autocast", "bf16"),
                       ("chunk_size", 16)]:  # fmt: skip
        (line,) = setting_warnings([*same, run("d", **{key: value})])
        assert f"different {key}:" in line and f"d={value}" in line, line
    for key, one, two in [("criterion", "cross_entropy", "mse"), ("batch_size", None, 8),
                          ("inputs_key", None, "x")]:  # fmt: skip
        runs = [run("a", {key: one}), run("b", {key: two})]
        (line,) = setting_warnings(runs)
        assert f"different {key}:" in line and f"b={two}" in line, line


def test_runs_at_different_steps_are_stated_and_warned_about(tmp_path):
    dirs = [make_dynamics(tmp_path, 3), make_dynamics(tmp_path, 5, steps=(0, 4, 6))]
    out = tmp_path / "c"
    args = ["compare", *map(str, dirs), "--out", str(out), "--n-boot", "0", "--n-perm", "10"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dyn3long: step 9 (its last)" in result.stdout
    assert "dyn5long: step 6 (its last)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "different steps" in warnings[0] and "dyn3long at step 9" in warnings[0]
    assert "--step 4 is the largest step they all have" in warnings[0]
    result = runner.invoke(app, [*args, "--step", "4"])
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output
    assert "dyn3long: step 4\n" in result.stdout
    missing = runner.invoke(app, [*args, "--step", "6"])  # dyn3long has no step 6
    assert missing.exit_code == 2
    text = " ".join(missing.output.split())
    assert "no checkpoint at step 6 in ['dyn3long']" in text and "(the largest 4)" in text


def test_the_data_and_a_loss_file_are_compared_by_content(tmp_path):
    """Copies of one loss file in two run folders are one loss; other data is named."""
    from saddles.runs.compare import _run_settings
    from saddles.runs.schema import RunSpec

    def spec(folder, loss_text, data_bytes):
        folder.mkdir()
        (folder / "losses.py").write_text(loss_text)
        (folder / "data.pt").write_bytes(data_bytes)
        (folder / "run.yaml").write_text("")
        values = {"model": "pkg:make", "data": "data.pt", "loss": "losses.py:mse"}
        return RunSpec.from_dict(values, folder, "run")

    text = "def mse(model, batch):\n    return 0.0\n"
    a, b = spec(tmp_path / "a", text, b"same"), spec(tmp_path / "b", text, b"same")
    c = spec(tmp_path / "c", text + "# edited\n", b"other")
    assert a.loss != b.loss  # absolute paths of two copies
    assert a.identity()["loss_sha256"] == b.identity()["loss_sha256"] != c.identity()[
        "loss_sha256"]  # fmt: skip
    import yaml

    from saddles.runs.compare import Run

    runs = []
    for name, s in (("a", a), ("b", b), ("c", c)):
        (tmp_path / name / "run.yaml").write_text(yaml.safe_dump(s.to_dict()))
        settings = {**_run_settings(tmp_path / name), **AnalysisConfig().to_dict()}
        runs.append(Run(name, tmp_path / name, "run", [], {"2d": settings}))
    assert setting_warnings(runs[:2]) == []
    lines = setting_warnings(runs)  # c: an edited loss file and other data
    assert len(lines) == 2
    assert "different loss:" in lines[0] and "different data_sha256:" in lines[1]


def test_runs_that_differ_by_training_seed_are_one_configuration(tmp_path):
    """Runs named <configuration>-seed<N>: each is one observation of the relations, and the
    summary gives each configuration's mean over its training runs with variance shares."""
    from saddles.runs.compare import training_group

    assert training_group("resnet20-skip-seed123") == ("resnet20-skip", 123)
    assert training_group("w4_train_seed2") == ("w4", 2)
    assert training_group("beta-1") == ("beta-1", "")
    factory = "import torch\n\n"
    for w in (4, 8, 16):
        for s in (0, 1):
            factory += (f"def make_w{w}_s{s}():\n    torch.manual_seed({100 * s + w})\n"
                        f"    return torch.nn.Sequential(torch.nn.Linear(4, {w}), "
                        f"torch.nn.Tanh(), torch.nn.Linear({w}, 3))\n\n")  # fmt: skip
    (tmp_path / "nets.py").write_text(factory)
    torch.manual_seed(0)
    torch.save((torch.randn(32, 4), torch.randint(0, 3, (32,))), tmp_path / "batch.pt")
    dirs = []
    for w in (4, 8, 16):
        for s in (0, 1):
            name = f"w{w}-seed{s}"
            (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""
                name: {name}
                model: nets.py:make_w{w}_s{s}
                data: batch.pt
                criterion: cross_entropy
                out: runs/{name}
                analysis:
                  directions: [random]
                  direction_seeds: 2
                  resolution: 5
                  representations: [grid-full]
                  hessian: false
                  noise_points: 0
            """))  # fmt: skip
            result = runner.invoke(app, ["run", str(tmp_path / f"{name}.yaml"), "--quiet"])
            assert result.exit_code == 0, result.output
            dirs.append(tmp_path / "runs" / name)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *map(str, dirs), "--out", str(out), "--n-boot",
                                 "100", "--n-perm", "50"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = read(out / "compare.csv")
    assert {r["n"] for r in table} == {"6"} and {r["n_seeds"] for r in table} == {"2"}
    summary = read(out / "summary.csv")
    assert sorted(r["model"] for r in summary) == ["w16", "w4", "w8"]
    assert {r["n_train_seeds"] for r in summary} == {"2"}
    row = next(r for r in summary if r["model"] == "w8")
    runs = read(out / "runs.csv")
    own = [float(r["average_persistence"]) for r in runs if r["model"] == "w8"]
    assert float(row["average_persistence_mean"]) == pytest.approx(np.mean(own))
    assert 0 <= float(row["average_persistence_share_training"]) <= 1
    assert "Over training seeds" in (out / "report.html").read_text()
