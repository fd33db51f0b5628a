"""The study saddles exists for, end to end on a Pythia-style suite built here: one Hugging Face
folder per training step (GPT-NeoX, eager attention, saved with save_pretrained) for two model
sizes, and a tokenized .pt file of dict batches. One `saddles dynamics` command per size gives
dynamics.csv and a report; `saddles run` on one revision agrees with its row; a custom loss
indexes batch["input_ids"]; `saddles compare` relates the two runs by size."""

from __future__ import annotations

import csv
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app

transformers = pytest.importorskip("transformers")
runner = CliRunner()
VOCAB = 24
ANALYSIS = """\
analysis:
  resolution: 5
  representations: [grid-full]
  hessian: false
  noise_points: 4
"""  # the fixed policy of `saddles dynamics` draws random directions


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def suite(folder, hidden: int, steps=(0, 10, 100)):
    """Revisions step0/, step10/, step100/ of one size: the weights drift a little per step."""
    torch.manual_seed(hidden)
    config = transformers.GPTNeoXConfig(
        num_hidden_layers=1, hidden_size=hidden, num_attention_heads=2,
        intermediate_size=2 * hidden, vocab_size=VOCAB, max_position_embeddings=16,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPTNeoXForCausalLM(config)
    for step in steps:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.97)
        model.save_pretrained(folder / f"step{step}", safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pythia")
    ids = torch.randint(0, VOCAB, (4, 8), generator=torch.Generator().manual_seed(0))
    torch.save({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, tmp / "tokens.pt")
    (tmp / "losses.py").write_text(textwrap.dedent("""
        import torch.nn.functional as F

        def next_token(model, batch):
            ids = batch["input_ids"]
            logits = model(input_ids=ids).logits[:, :-1]
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    """))  # fmt: skip
    for name, hidden in (("small", 8), ("large", 16)):
        suite(tmp / name, hidden)
        (tmp / f"{name}.yaml").write_text(
            f"name: {name}\nmodel: hf:{name}/step0\ncheckpoints: {name}\ndata: tokens.pt\n"
            f"criterion: causal_lm\nout: out-{name}\n" + ANALYSIS
        )
        result = runner.invoke(app, ["dynamics", str(tmp / f"{name}.yaml"), "--quiet"])
        assert result.exit_code == 0, result.output
    return tmp


def test_one_command_gives_the_table_and_the_report(runs):
    rows = read(runs / "out-small" / "dynamics.csv")
    assert sorted({int(r["step"]) for r in rows}) == [0, 10, 100]
    assert all(float(r["n_minima"]) >= 1 for r in rows)
    assert (runs / "out-small" / "report.html").stat().st_size > 1000


def test_diagram_distances_to_the_previous_and_last_checkpoint_equal_gudhi(runs):
    import gudhi
    import numpy as np

    rows = sorted(read(runs / "out-small" / "dynamics.csv"), key=lambda r: int(r["step"]))
    assert np.isnan(float(rows[0]["bottleneck_to_previous"]))
    assert float(rows[-1]["bottleneck_to_last"]) == pytest.approx(0.0, abs=1e-12)

    def diagram(r):
        path = runs / "out-small" / r["checkpoint"] / r["subspace"] / "pairs-random-grid-full.npz"
        with np.load(path) as z:
            return np.stack([z["birth"], z["death"]], axis=1)

    expected = gudhi.bottleneck_distance(diagram(rows[1]), diagram(rows[0]))
    assert float(rows[1]["bottleneck_to_previous"]) == pytest.approx(expected, rel=1e-9)
    assert float(rows[0]["bottleneck_to_last_normalized"]) >= 0


def test_saddles_run_on_one_revision_agrees_with_its_row(runs):
    (runs / "one.yaml").write_text(
        "name: one\nmodel: hf:small/step10\ndata: tokens.pt\ncriterion: causal_lm\n"
        "out: out-one\n" + ANALYSIS + "  directions: [random]\n"
    )
    result = runner.invoke(app, ["run", str(runs / "one.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    single = read(runs / "out-one" / "one" / "metrics.csv")[0]
    row = next(r for r in read(runs / "out-small" / "dynamics.csv") if r["step"] == "10")
    for key in ("n_minima", "n_saddles", "average_persistence", "value_min", "noise_floor"):
        assert single[key] == row[key], key


def test_a_custom_loss_indexing_input_ids_gives_the_criterions_numbers(runs):
    yaml = (runs / "small.yaml").read_text().replace("criterion: causal_lm",
                                                     "loss: losses.py:next_token")  # fmt: skip
    (runs / "custom.yaml").write_text(yaml.replace("out: out-small", "out: out-custom"))
    result = runner.invoke(app, ["dynamics", str(runs / "custom.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    mine = read(runs / "out-custom" / "dynamics.csv")
    builtin = read(runs / "out-small" / "dynamics.csv")
    for a, b in zip(mine, builtin, strict=True):
        assert float(a["value_min"]) == pytest.approx(float(b["value_min"]), rel=1e-5)


def test_compare_relates_the_two_sizes(runs):
    result = runner.invoke(app, ["compare", str(runs / "out-small"), str(runs / "out-large"),
                                 "--by", "n_params", "--out", str(runs / "cmp")])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = read(runs / "cmp" / "compare.csv")
    assert table and {r["y"] for r in table} == {"n_params"}
    assert all(r["n"] == "2" for r in table)  # two runs: numbers, and a note for the interval


def test_compare_draws_the_pairwise_distances_equal_to_gudhi(runs):
    import gudhi
    import numpy as np

    result = runner.invoke(app, ["compare", str(runs / "out-small"), str(runs / "out-large"),
                                 "--out", str(runs / "cmp2")])  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = read(runs / "cmp2" / "distances.csv")
    assert (runs / "cmp2" / "figures" / "distances.png").exists()

    def diagram(name):
        (ck,) = [p for p in (runs / f"out-{name}").iterdir() if p.name == "step100"]
        with np.load(ck / "2d" / "pairs-random-grid-full.npz") as z:
            return np.stack([z["birth"], z["death"]], axis=1)

    expected = gudhi.bottleneck_distance(diagram("small"), diagram("large"))
    assert float(row["bottleneck"]) == pytest.approx(expected, rel=1e-9)
