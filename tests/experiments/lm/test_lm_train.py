"""Training: the schedule, log-spaced checkpoints with sidecars, resumption, every size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gpt_for_tests import tiny_gpt

from saddles.experiments import lm
from saddles.experiments.lm import (
    SIZES,
    fixed_eval_batch,
    gpt_for_size,
    learning_rate,
    list_checkpoints,
    lm_loss,
    load_lm_checkpoint,
    log_spaced_steps,
    run_lm_training,
    train_lm,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_the_gpt_trains(corpus):
    _, _, _, train, val = corpus
    model = gpt_for_size("L1-d32", 103, block_size=32, seed=0)
    info = train_lm(model, train, val, steps=30, batch_size=16, block_size=32, lr=3e-3,
                    warmup=3, checkpoint_steps=[], eval_batch_size=16)  # fmt: skip
    first, last = info["history"][0], info["history"][-1]
    assert (first["step"], last["step"]) == (0, 30)
    assert first["val_loss"] > 4.5 and last["val_loss"] < first["val_loss"] - 0.8
    assert last["train_loss"] < first["train_loss"] - 0.8
    assert not model.training


def test_learning_rate_schedule_warms_up_then_decays():
    rates = [learning_rate(s, 1.0, warmup=10, steps=100, min_lr_ratio=0.1) for s in range(101)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(rates[:10], rates[1:10], strict=False))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[55] == pytest.approx(0.55) and rates[100] == pytest.approx(0.1)


@pytest.mark.parametrize("total,n", [(0, 12), (5, 12), (11, 12), (12, 12), (40, 12),
                                     (600, 12), (10_000, 12), (4000, 15), (100, 10)])  # fmt: skip
def test_log_spaced_steps(total, n):
    steps = log_spaced_steps(total, n)
    assert len(steps) == min(n, total + 1)
    assert steps[0] == 0 and steps[-1] == total
    assert all(isinstance(s, int) for s in steps) and all(np.diff(steps) > 0)
    if total >= 1000:  # spacing is even in log(step): successive ratios are all alike
        ratios = np.diff(np.log([s for s in steps if s >= 10]))  # rounding spares larger steps
        assert len(ratios) >= n - 6 and ratios.max() < 1.2 * ratios.min()


# --- training with checkpoints -------------------------------------------------------------

SETTINGS = {"steps": 12, "batch_size": 4, "block_size": 16, "lr": 3e-3, "warmup": 2,
            "checkpoint_steps": [0, 1, 3, 6, 12], "eval_batch_size": 4}  # fmt: skip


def test_checkpoints_with_sidecars_reload_to_identical_logits(corpus, tmp_path):
    _, _, _, train, val = corpus
    model = tiny_gpt()
    info = train_lm(model, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    stems = [f"step_{s:06d}" for s in SETTINGS["checkpoint_steps"]]
    assert names == sorted([*(s + ".safetensors" for s in stems), *(s + ".json" for s in stems),
                            "run.json"])  # fmt: skip
    assert not (tmp_path / "resume").exists()  # optimizer state dropped when finished
    assert list(list_checkpoints(tmp_path)) == SETTINGS["checkpoint_steps"]
    assert list(info["checkpoints"]) == SETTINGS["checkpoint_steps"]
    x, y = fixed_eval_batch(val, 4, 16)
    for step in (0, 6):
        record = json.loads((tmp_path / f"step_{step:06d}.json").read_text())
        assert record["step"] == step and record["tokens_seen"] == step * 4 * 16
        again = load_lm_checkpoint(tmp_path, step)
        assert not again.training
        assert float(lm_loss(again, (x, y)).detach()) == pytest.approx(record["val_loss"], abs=1e-6)
    final = load_lm_checkpoint(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(final(x), model(x), rtol=0, atol=0)
    assert (
        info["final_val_loss"]
        == json.loads((tmp_path / "step_000012.json").read_text())["val_loss"]
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["model"]["n_embd"] == 16 and run["training"]["steps"] == 12
    from safetensors import safe_open

    with safe_open(str(tmp_path / "step_000006.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "6"


def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(corpus, tmp_path):
    _, _, _, train, val = corpus
    reference = tiny_gpt()
    train_lm(reference, train, val, **SETTINGS)

    class Interrupt(Exception):
        pass

    def stop_after_7(record):
        if record["step"] >= 7:
            raise Interrupt

    model = tiny_gpt()
    with pytest.raises(Interrupt):  # at step 7, before checkpoint 12
        train_lm(model, train, val, checkpoint_dir=tmp_path, eval_every=7, callback=stop_after_7,
                 **SETTINGS)  # fmt: skip
    assert list(list_checkpoints(tmp_path)) == [0, 1, 3, 6]
    assert json.loads((tmp_path / "resume" / "optimizer.json").read_text())["step"] == 6
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("step_*")}

    model = tiny_gpt(seed=99)  # any starting weights: resumption loads the checkpoint
    info = train_lm(model, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    assert info["resumed_from"] == 6 and [r["step"] for r in info["history"]] == [12]
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    assert all(written[p.name] == p.stat().st_mtime_ns for p in tmp_path.glob("step_*")
               if p.name in written)  # fmt: skip

    finished = tiny_gpt(seed=98)
    again = train_lm(finished, train, val, checkpoint_dir=tmp_path, **SETTINGS)
    assert again["resumed_from"] == 12 and again["history"] == []
    assert again["final_val_loss"] == info["final_val_loss"]
    assert all(
        torch.equal(p, q)
        for p, q in zip(finished.parameters(), reference.parameters(), strict=True)
    )

    with pytest.raises(ValueError, match="other settings"):
        train_lm(tiny_gpt(), train, val, checkpoint_dir=tmp_path, **{**SETTINGS, "lr": 1e-3})


def test_run_lm_training_writes_one_checkpoint_directory_per_size(tmp_path):
    dirs = run_lm_training(tmp_path, "small", sizes=[0, "L2-d64"], steps=2, progress=False)
    assert list(dirs) == ["L1-d32", "L2-d64"]
    for name, path in dirs.items():
        assert path == tmp_path / name / "checkpoints"
        assert list(list_checkpoints(path)) == [0, 1, 2]
        run = json.loads((path / "run.json").read_text())
        assert run["model"]["n_embd"] == SIZES[name].n_embd
        assert run["training"]["block_size"] == lm.PRESETS["small"].block_size
    with pytest.raises(KeyError, match="unknown preset"):
        run_lm_training(tmp_path, "medium")
