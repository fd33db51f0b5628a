"""saddles.io.suite: a run's checkpoints found, ordered, hashed over their tensors, and
duplicated revisions marked; `saddles checkpoints FOLDER` lists them."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from saddles.cli import app
from saddles.io.suite import (
    SUITE_COLUMNS,
    check_suite,
    discover_checkpoints,
    duplicates_message,
    load_state,
    weights_hash,
)

transformers = pytest.importorskip("transformers")


def state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(4, 3, generator=g), "0.bias": torch.randn(4, generator=g)}


def test_the_hash_is_of_the_tensors_not_of_the_files(tmp_path):
    a = state(0)
    save_file(a, str(tmp_path / "a.safetensors"))
    torch.save(a, tmp_path / "b.pt")
    assert weights_hash(a) == weights_hash(dict(reversed(list(a.items()))))  # order-free
    same = [weights_hash(s) for s in (a, {k: v.clone() for k, v in a.items()})]
    assert same[0] == same[1]
    bumped = {k: v.clone() for k, v in a.items()}
    bumped["0.bias"][2] = torch.nextafter(bumped["0.bias"][2], torch.tensor(9.0))  # one ulp
    assert weights_hash(bumped) != weights_hash(a)
    assert weights_hash({k: v.double() for k, v in a.items()}) != weights_hash(a)  # dtype
    renamed = {"1." + k[2:]: v for k, v in a.items()}
    assert weights_hash(renamed) != weights_hash(a)
    # The same tensors in a .safetensors and a .pt file: one hash.
    (tmp_path / "a.safetensors").rename(tmp_path / "step1.safetensors")
    (tmp_path / "b.pt").rename(tmp_path / "step2.pt")
    rows = check_suite(discover_checkpoints(tmp_path))
    assert rows[0]["sha256"] == rows[1]["sha256"] == weights_hash(a)


def test_a_suite_with_a_copied_revision_is_flagged(tmp_path):
    for step, seed in ((0, 0), (10, 1), (20, 2), (30, 2), (40, 3)):
        save_file(state(seed), str(tmp_path / f"step{step}.safetensors"))
    torch.save(state(1), tmp_path / "step50.pt")  # the same weights as step 10, another format
    rows = check_suite(discover_checkpoints(tmp_path))
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40, 50]
    assert set(rows[0]) == set(SUITE_COLUMNS)
    dup = {r["step"]: r["duplicate_of"] for r in rows}
    # The latest of identical revisions is the one the others copy.
    assert dup == {0: "", 10: "step50", 20: "step30", 30: "", 40: "", 50: ""}
    assert all(r["n_params"] == 16 for r in rows)
    assert rows[2]["sha256"] == rows[3]["sha256"] != rows[4]["sha256"]
    message = duplicates_message(rows)
    assert message.startswith("2 of 6 checkpoints") and "step 20 = step30" in message
    assert duplicates_message([r for r in rows if r["step"] in (0, 40)]) == ""


def test_hugging_face_revisions_are_hashed_and_loaded(tmp_path):
    config = transformers.GPTNeoXConfig(
        num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16,
        vocab_size=20, max_position_embeddings=16, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPTNeoXForCausalLM(config)
    model.save_pretrained(tmp_path / "step0")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    model.save_pretrained(tmp_path / "step100")
    shutil.copytree(tmp_path / "step100", tmp_path / "step7")  # a branch serving final weights
    found = discover_checkpoints(tmp_path)
    rows = check_suite(found)
    assert [(r["step"], r["duplicate_of"]) for r in rows] == [(0, ""), (7, "step100"),
                                                              (100, "")]  # fmt: skip
    fresh = transformers.GPTNeoXForCausalLM(config)
    load_state(fresh, found[-1])
    for (name, p), q in zip(fresh.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_the_checkpoints_command_lists_and_writes_the_table(tmp_path):
    ck = tmp_path / "run"
    ck.mkdir()
    for step, seed in ((0, 0), (5, 1), (9, 1)):
        save_file(state(seed), str(ck / f"ckpt-{step}.safetensors"))
    result = CliRunner().invoke(app, ["checkpoints", str(ck), "--out", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "3 checkpoints" in text and "warning: 1 of 3 checkpoints" in text
    assert "step 5 = ckpt-9" in text
    with open(tmp_path / "c.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["duplicate_of"] for r in table] == ["", "ckpt-9", ""]
    missing = CliRunner().invoke(app, ["checkpoints", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no checkpoint directory" in missing.output
