"""The run schema: AnalysisConfig's declarative checks and identity, dynamics folders that
outlive a new field, interrupted checkpoints that resume, and RunSpec (one YAML schema for
`saddles run` and `saddles dynamics`)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from test_series import count_calls, data, make_net, mse, small, write_run

import saddles.runs.analyze as pipe
import saddles.runs.series as dyn
from saddles.runs.config import (
    SCHEMA_VERSION,
    AnalysisConfig,
    Integer,
    identity_fields,
    setting,
)
from saddles.runs.schema import RunSpec, SpecError
from saddles.runs.series import analyze_checkpoints


@dataclasses.dataclass(frozen=True)
class Later(AnalysisConfig):
    """AnalysisConfig as a later release might have it: one more field, whose default keeps
    the old behaviour."""

    smoothing: int = setting(0, Integer(0), added_in=2)


def old_short_id(cfg):
    """short_id as the previous release computed it: every field it had (schema version 1)
    hashed."""
    first = {f.name for f in dataclasses.fields(cfg) if f.metadata["added_in"] == 1}
    values = {k: v for k, v in asdict(cfg).items() if k in first}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def test_config_is_frozen_and_checked_from_its_table():
    cfg = AnalysisConfig(directions="random", n_directions=3, hessian_top_k=1)
    assert cfg.directions == ["random"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.resolution = 5
    raised = AnalysisConfig(directions=["hessian"], n_directions=3, hessian_top_k=1)
    assert raised.hessian_top_k == 3  # hessian directions need that many eigenvectors
    assert dataclasses.replace(raised, resolution=9).hessian_top_k == 3
    for kwargs, words in [
        ({"resolution": 2}, "resolution must be at least 3"),
        ({"resolution": "7"}, "resolution must be an integer"),
        ({"span": -1}, "span must be a non-negative number"),
        ({"engine": "turbo"}, "engine must be one of"),
        ({"norm": "l2"}, "norm must be one of"),
        ({"autocast": "int8"}, "autocast must be null or one of"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"loops": 1}, "loops must be true or false"),
        ({"sampling": "grid", "n_directions": 4}, "a grid takes 1 to 3 directions"),
        ({"params": {"inclde": ["x"]}}, "unknown params key"),
    ]:
        with pytest.raises(ValueError, match=words):
            AnalysisConfig(**kwargs)


def test_identity_keeps_old_ids_and_ignores_execution_and_later_defaults():
    for cfg in (AnalysisConfig(), small(resolution=9, params={"exclude": ["0.*"]})):
        assert cfg.short_id() == old_short_id(cfg)  # today's folders keep their names
        assert dataclasses.replace(cfg, executor="ray", workers=3).short_id() == cfg.short_id()
        assert dataclasses.replace(cfg, chunk_size=8).short_id() != cfg.short_id()
        later = Later(**cfg.to_dict())
        assert later.short_id() == cfg.short_id()
        assert dataclasses.replace(later, smoothing=2).short_id() != cfg.short_id()
    assert {"executor", "workers"}.isdisjoint(identity_fields())
    assert {"engine", "chunk_size", "device", "dtype", "eval_tokens"} <= set(identity_fields())


def same_rows(a, b):
    """Equal rows but for the time taken (NaN equal to NaN)."""

    def text(rows):
        return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in rows])

    return text(a) == text(b)


def test_a_folder_from_before_a_new_field_is_extended(tmp_path, monkeypatch):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5])
    out = tmp_path / "out"
    cfg = small(hessian=False, noise_points=0)
    rows = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["schema_version"] == SCHEMA_VERSION
    assert json.loads((out / "ckpt-0" / "row.json").read_text())["schema_version"] == SCHEMA_VERSION
    calls = count_calls(monkeypatch, dyn, "analyze", lambda kwargs: kwargs["name"])
    write_run(ckdir, [0, 5, 9])
    later = Later(**cfg.to_dict())  # the release that added `smoothing`
    again = analyze_checkpoints(make_net, ckdir, mse, data(), later, out, progress=False)
    assert calls == ["run@9"] and again[:2] == rows
    # Another value of the new field is another configuration.
    with pytest.raises(ValueError, match="another configuration"):
        analyze_checkpoints(make_net, ckdir, mse, data(), dataclasses.replace(later, smoothing=1),
                            out, progress=False)  # fmt: skip


def test_a_folder_of_the_previous_release_is_read_and_extended(tmp_path, monkeypatch):
    """No schema_version, and fingerprints over every field of the configuration stored in
    config.yaml (here run on Ray, which today's identity leaves out)."""
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5])
    out = tmp_path / "out"
    cfg = small(hessian=False, noise_points=0)
    rows = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    old = {"2d": dyn.with_policy(dataclasses.replace(cfg, executor="ray"), "fixed").to_dict()}
    (out / "config.yaml").write_text(yaml.safe_dump({"policy": "fixed", "subspaces": old}))

    def legacy(trajectory):
        blob = json.dumps({"policy": "fixed", "trajectory": trajectory, **old}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    for ck in ("ckpt-0", "ckpt-5"):
        record = json.loads((out / ck / "row.json").read_text())
        for key in ("schema_version", "identity"):
            record.pop(key)
        record["fingerprint"] = record["config_fingerprint"] = legacy(None)
        (out / ck / "row.json").write_text(json.dumps(record))
        (out / ck / "started.json").unlink()
    calls = count_calls(monkeypatch, dyn, "analyze", lambda kwargs: kwargs["name"])
    write_run(ckdir, [0, 5, 9])
    again = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)
    assert calls == ["run@9"] and again[:2] == rows
    # A legacy folder of another configuration is still refused.
    (out / "ckpt-9" / "row.json").unlink()
    (out / "ckpt-9" / "started.json").unlink()
    old["2d"]["resolution"] = 9
    (out / "config.yaml").write_text(yaml.safe_dump({"policy": "fixed", "subspaces": old}))
    with pytest.raises(ValueError, match="another configuration"):
        analyze_checkpoints(make_net, ckdir, mse, data(), cfg, out, progress=False)


@pytest.mark.parametrize("policy", ["fixed", "hessian"])  # hessian: eigenvectors saved too
def test_an_interrupted_checkpoint_resumes_its_landscapes_and_hessian(
    tmp_path, monkeypatch, policy
):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5])
    configs = {
        "2d": small(noise_points=0, engine="sequential"),
        "3d": small(sampling="sobol", n_points=64, n_directions=3, representations=["knn"],
                    hessian=False, noise_points=0, engine="sequential"),
    }  # fmt: skip
    phase = {"now": None}
    tally: dict = {}

    def loss(model, batch):
        tally[phase["now"]] = tally.get(phase["now"], 0) + 1
        return mse(model, batch)

    real_analyze, real_hessian = dyn.analyze, pipe.hessian_record

    def analyze(*args, **kwargs):
        phase["now"] = kwargs["run_dir"].name
        if phase.get("stop") == phase["now"]:
            raise KeyboardInterrupt  # killed after the first landscape of checkpoint 0
        return real_analyze(*args, **kwargs)

    def hessian(*args, **kwargs):
        phase["now"] = "hessian"
        return real_hessian(*args, **kwargs)

    monkeypatch.setattr(dyn, "analyze", analyze)
    monkeypatch.setattr(pipe, "hessian_record", hessian)
    fresh = analyze_checkpoints(make_net, ckdir, loss, data(), configs, tmp_path / "fresh",
                                progress=False, layout="long", policy=policy)  # fmt: skip
    whole = dict(tally)
    assert whole["2d"] >= 2 * 49 and whole["hessian"] > 0  # 49 points, the centre once
    out = tmp_path / "out"
    phase["stop"] = "3d"
    with pytest.raises(KeyboardInterrupt):
        analyze_checkpoints(make_net, ckdir, loss, data(), configs, out, progress=False,
                            layout="long", policy=policy)  # fmt: skip
    assert list((out / "ckpt-0" / "2d").glob("landscape-*/landscape.npz"))
    assert (out / "ckpt-0" / "hessian.json").is_file()
    assert not (out / "ckpt-0" / "row.json").exists()
    phase.pop("stop")
    tally.clear()
    rows = analyze_checkpoints(make_net, ckdir, loss, data(), configs, out, progress=False,
                               layout="long", policy=policy)  # fmt: skip
    # Checkpoint 0's Hessian is reused and its finished 2d landscape only reopened (one loss
    # call: the centre check); checkpoint 5 is computed whole.
    assert tally["hessian"] == whole["hessian"] // 2
    assert tally["2d"] == whole["2d"] // 2 + 1
    assert same_rows(rows, fresh)


def test_a_run_says_where_it_is_and_what_each_checkpoint_gave(tmp_path, capsys):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 5, 9])
    cfg = small(hessian=False, noise_points=0, representations=["grid-full"])
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "o")
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(("checkpoint ", "step "))]  # fmt: skip
    assert [line.split(":")[0] for line in lines] == [
        "checkpoint 1 of 3 (step 0)", "step 0 done", "checkpoint 2 of 3 (step 5)",
        "step 5 done", "checkpoint 3 of 3 (step 9)", "step 9 done",
    ]  # fmt: skip
    assert "left" not in lines[0] and "elapsed" in lines[2] and "left" in lines[2]
    assert "2d random grid-full: minima" in lines[1]
    write_run(ckdir, [0, 5, 9, 12])
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "o")
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(("checkpoint ", "step "))]  # fmt: skip
    assert [line.split(":")[0] for line in lines] == ["checkpoint 4 of 4 (step 12)",
                                                      "step 12 done"]  # fmt: skip


# --- RunSpec: one schema for saddles run and saddles dynamics ---------------------------------

RUN_KEYS = {"model": "netdef.py:make_net", "data": "batch.pt", "criterion": "cross_entropy"}


def spec_error(values, command, base="/base"):
    with pytest.raises(SpecError) as info:
        RunSpec.from_dict(values, base, command)
    return f"{info.value.key}: {info.value.message}"


def test_run_spec_resolves_paths_against_the_yaml_folder(tmp_path):
    third = {"n_directions": 3, "sampling": "sobol", "representations": ["knn"]}
    values = {**RUN_KEYS, "checkpoints": "ckpts", "loss": "losses.py:mine", "out": "/abs/out",
              "inputs_key": "x", "targets_key": "y", "batch_size": 8, "steps": 5,
              "params": {"exclude": ["b*"]}, "policy": "pca",
              "analysis": {"subspaces": {"2d": {}, "3d": third}}}  # fmt: skip
    del values["criterion"]
    spec = RunSpec.from_dict(values, tmp_path, "dynamics")
    assert spec.model == f"{tmp_path / 'netdef.py'}:make_net"
    assert spec.loss == f"{tmp_path / 'losses.py'}:mine"
    assert spec.data == tmp_path / "batch.pt" and spec.checkpoints == tmp_path / "ckpts"
    assert str(spec.out) == "/abs/out" and spec.steps == [5] and spec.policy == "pca"
    assert spec.name == "ckpts" and (spec.inputs_key, spec.targets_key) == ("x", "y")
    assert list(spec.configs) == ["2d", "3d"]
    assert all(c.params == {"exclude": ["b*"]} for c in spec.configs.values())
    assert spec.identity()["policy"] == "pca" and spec.identity()["batch_size"] == 8
    hf = RunSpec.from_dict({**RUN_KEYS, "model": "hf:revs/step0"}, tmp_path, "run")
    assert hf.model == f"hf:{tmp_path / 'revs' / 'step0'}" and hf.name == "step0"
    assert hf.out == tmp_path / "runs" / "step0" and hf.checkpoint is None
    plain = RunSpec.from_dict({**RUN_KEYS, "model": "pkg.nets:make"}, tmp_path, "run")
    assert plain.model == "pkg.nets:make" and plain.name == "make"


@pytest.mark.parametrize(
    ("values", "command", "words"),
    [
        ({**RUN_KEYS, "checkpoints": "c"}, "run", ["checkpoints:", "saddles dynamics"]),
        ({**RUN_KEYS, "checkpoint": "w.pt"}, "dynamics", ["checkpoint:", "checkpoints:"]),
        ({**RUN_KEYS, "policy": "pca"}, "run", ["policy:", "saddles dynamics"]),
        ({**RUN_KEYS, "colour": "red"}, "run", ["unknown key(s) ['colour']", "'targets_key'"]),
        (RUN_KEYS, "dynamics", ["must say `checkpoints:`"]),
        ({**RUN_KEYS, "loss": "l.py:f"}, "run", ["exactly one of `criterion:` or `loss:`"]),
        ({**RUN_KEYS, "criterion": "hinge"}, "run", ["criterion:", "hinge"]),
        ({**RUN_KEYS, "batch_size": 0}, "run", ["batch_size: must be a positive integer"]),
        ({**RUN_KEYS, "inputs_key": 3}, "run", ["inputs_key: must be a string"]),
        ({**RUN_KEYS, "checkpoints": "c", "steps": ["x"]}, "dynamics", ["steps:"]),
        ({**RUN_KEYS, "checkpoints": "c", "policy": "pcb"}, "dynamics", ["policy:", "pcb"]),
        ({**RUN_KEYS, "params": {}, "analysis": {"params": {}}}, "run", ["params:", "not both"]),
        ({**RUN_KEYS, "analysis": {"resolutoin": 5}}, "run", ["analysis:", "resolutoin"]),
        ({**RUN_KEYS, "analysis": {"directions": ["given"]}}, "run", ["analysis:", "given"]),
        ({**RUN_KEYS, "analysis": {"subspaces": {"2d": {}}}}, "run", ["saddles dynamics"]),
        ({**RUN_KEYS, "checkpoints": "c", "analysis": {"directions": ["random"]}}, "dynamics",
         ["analysis:", "policy"]),
    ],
)  # fmt: skip
def test_run_spec_refuses_with_one_line_naming_the_key(values, command, words):
    message = spec_error(values, command)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def readme_yaml_blocks():
    text = (Path(__file__).parents[2] / "README.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_every_yaml_block_of_the_readme_is_a_valid_run_spec(tmp_path):
    blocks = readme_yaml_blocks()
    assert blocks
    for block in blocks:
        values = yaml.safe_load(block)
        command = "dynamics" if "checkpoints" in values else "run"
        spec = RunSpec.from_dict(values, tmp_path, command)
        for key in ("params", "inputs_key", "targets_key", "batch_size"):
            if key in values and key != "params":
                assert getattr(spec, key) == values[key]
        if "params" in values:
            assert all(c.params for c in spec.configs.values())


def test_the_readme_dynamics_example_runs(tmp_path):
    """The README's `saddles dynamics` file as written, on a tiny Pythia-style suite (the
    analysis settings made small: the keys at the top are what is checked)."""
    pytest.importorskip("transformers")
    from typer.testing import CliRunner

    from saddles.cli import app
    from tests.test_pythia_style import VOCAB, suite

    block = next(b for b in readme_yaml_blocks() if "checkpoints:" in b)
    suite(tmp_path / "pythia-70m", 8, steps=(0, 1000, 8000, 64000))
    ids = torch.randint(0, VOCAB, (4, 8), generator=torch.Generator().manual_seed(0))
    torch.save({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, tmp_path / "tokens.pt")
    values = yaml.safe_load(block)
    values["analysis"] = {"resolution": 5, "noise_points": 0, "hessian": False,
                          "subspaces": {"2d": {}, "4d": {"n_directions": 4, "sampling": "sobol",
                                                         "n_points": 32,
                                                         "representations": ["knn"]}}}  # fmt: skip
    (tmp_path / "dynamics.yaml").write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(app, ["dynamics", str(tmp_path / "dynamics.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "runs" / "pythia-70m" / "dynamics.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["step"]) for r in rows}) == [1000, 8000, 64000]
    assert {r["subspace"] for r in rows} == {"2d", "4d"}
    stored = yaml.safe_load((tmp_path / "runs" / "pythia-70m" / "run.yaml").read_text())
    assert stored["analysis"]["2d"]["params"] == {"exclude": ["*embed*", "*layernorm*"]}


def test_a_grown_pca_trajectory_recomputes_landscapes_but_keeps_hessians(tmp_path, monkeypatch):
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    write_run(ckdir, [0, 3, 9])
    cfg = small(noise_points=0, representations=["grid-full"])
    analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "o", policy="pca",
                        progress=False)  # fmt: skip
    write_run(ckdir, [0, 3, 9, 30])
    solved = count_calls(monkeypatch, pipe, "hessian_record")
    calls = count_calls(monkeypatch, dyn, "analyze", lambda kwargs: kwargs["name"])
    grown = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "o", policy="pca",
                                progress=False)  # fmt: skip
    assert calls == ["run@0", "run@3", "run@9", "run@30"] and len(solved) == 1
    fresh = analyze_checkpoints(make_net, ckdir, mse, data(), cfg, tmp_path / "f", policy="pca",
                                progress=False)  # fmt: skip
    assert same_rows(grown, fresh)
