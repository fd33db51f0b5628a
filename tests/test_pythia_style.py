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


def neox(hidden: int, vocab: int):
    """A one-layer GPT-NeoX of width ``hidden``, initialized after ``torch.manual_seed(hidden)``."""
    torch.manual_seed(hidden)
    config = transformers.GPTNeoXConfig(
        num_hidden_layers=1, hidden_size=hidden, num_attention_heads=2,
        intermediate_size=2 * hidden, vocab_size=vocab, max_position_embeddings=16,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return transformers.GPTNeoXForCausalLM(config)


def suite(folder, hidden: int, steps=(0, 10, 100)):
    """Revisions step0/, step10/, step100/ of one size: the weights drift a little per step."""
    model = neox(hidden, VOCAB)
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


# A suite that really trained: GPT-NeoX of two sizes, a few dozen Adam steps on tokens with a
# rule to learn, revisions saved with save_pretrained; `saddles dynamics` sweeps spans with a
# batch noise floor on random planes (two direction seeds: intervals) and on the plane of the
# top and most negative Hessian eigenvectors, and `saddles compare` relates the sizes.
TRAINED_STEPS = (0, 10, 30, 60)
TRAINED_VOCAB = 16
SPANS = [0.01, 0.1, 0.3, 1.0]
SWEEP = f"""\
analysis:
  resolution: 9
  representations: [grid-full]
  span: {SPANS}
  batch_floor: 2
  noise_points: 4
  direction_seeds: 2
  hessian_which: top_bottom
  hessian_top_k: 2
  trace_matvecs: 6
  density_lanczos: 8
"""


def rule_tokens(n: int = 16, length: int = 12) -> torch.Tensor:
    """Sequences that count up by 1 (by 2 one time in five) modulo the vocabulary."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randint(0, TRAINED_VOCAB, (n, 1), generator=gen)
    step = 1 + (torch.rand(n, length - 1, generator=gen) < 0.2).long()
    return torch.cat([start, start + step.cumsum(1)], 1) % TRAINED_VOCAB


def trained_suite(folder, hidden: int, ids: torch.Tensor):
    """Revisions step0/ .. step60/ of one size, trained with Adam on ``ids``."""
    model = neox(hidden, TRAINED_VOCAB)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(max(TRAINED_STEPS) + 1):
        if step in TRAINED_STEPS:
            model.save_pretrained(folder / f"step{step}", safe_serialization=True)
        loss = model(input_ids=ids, labels=ids).loss
        if step in TRAINED_STEPS:
            losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("trained")
    ids = rule_tokens()
    torch.save({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, tmp / "tokens.pt")
    losses, printed = {}, {}
    for name, hidden in (("small", 8), ("large", 16)):
        losses[name] = trained_suite(tmp / name, hidden, ids)
        for policy in ("fixed", "hessian"):
            run = f"{name}-{policy}"
            (tmp / f"{run}.yaml").write_text(
                f"name: {run}\npolicy: {policy}\nmodel: hf:{name}/step0\ncheckpoints: {name}\n"
                f"data: tokens.pt\ncriterion: causal_lm\nout: out-{run}\n" + SWEEP
                + ("  hessian: false\n" if policy == "fixed" else "")
            )  # fmt: skip
            result = runner.invoke(app, ["dynamics", str(tmp / f"{run}.yaml"), "--quiet",
                                         "--threads", "1"])  # fmt: skip
            assert result.exit_code == 0, result.output
            printed[run] = result.output
    for policy in ("fixed", "hessian"):
        result = runner.invoke(app, ["compare", str(tmp / f"out-small-{policy}"),
                                     str(tmp / f"out-large-{policy}"), "--out",
                                     str(tmp / f"cmp-{policy}"), "--n-boot", "200",
                                     "--n-perm", "200"])  # fmt: skip
        assert result.exit_code == 0, result.output
        printed[f"cmp-{policy}"] = result.output
    return tmp, losses, printed


def first_sentence(path) -> str:
    import html
    import re

    text = path.read_text().split("<h1>")[1]
    return html.unescape(re.search(r"<p class='result'>(.*?)</p>", text).group(1))


def named_spans(text: str, sampled: list[float]) -> set[float]:
    """The spans a sentence names: ``0.01, 0.1 to 1`` -> every sampled span in each part."""
    out = set()
    for part in text.split(", "):
        low, _, high = part.partition(" to ")
        out |= {s for s in sampled if float(low) <= s <= float(high or low)}
    return out


def check_noise_sentence(sentence: str, rows: list[dict], unit: str, unit_key: str) -> bool:
    """The sentence's spans per plane are exactly those where the rows count (or do not
    count) a saddle above the noise floor, in as many units as the rows say; True when it
    names spans where nothing exceeds the noise."""
    import re

    quiet_named = False
    for kind in dict.fromkeys(r["direction"] for r in rows):
        own = [r for r in rows if r["direction"] == kind and r["sweep_span"] != ""]
        sampled = sorted({float(r["sweep_span"]) for r in own})
        loud = {float(r["sweep_span"]) for r in own if float(r["n_saddles_above_noise"]) > 0}
        floors = " or ".join(f"{f} floor" for f in sorted({r["noise_floor_source"] for r in own}))
        units = {r[unit_key] for r in own if float(r["n_saddles_above_noise"]) > 0}
        n_units = len({r[unit_key] for r in own})
        if not loud:
            assert (f"{kind} plane: nothing above the noise floor ({floors}) at any span from "
                    f"{sampled[0]:g} to {sampled[-1]:g}") in sentence  # fmt: skip
            quiet_named = True
            continue
        m = re.search(rf"{kind} plane: saddles above the noise floor \({floors}\) at spans? "
                      rf"(.+?) in (\d+) of (\d+) {unit}s(?:; nothing above it at spans? "
                      r"(.+?))?(?:; \w+ plane|\. |\.$)", sentence)  # fmt: skip
        assert m, sentence
        assert named_spans(m.group(1), sampled) == loud
        assert (int(m.group(2)), int(m.group(3))) == (len(units), n_units)
        quiet = set(sampled) - loud
        assert named_spans(m.group(4), sampled) == quiet if quiet else m.group(4) is None
        quiet_named |= bool(quiet)
    return quiet_named


def test_the_suite_trains(trained):
    _, losses, _ = trained
    for curve in losses.values():  # the weights change, and the loss falls
        assert curve[-1] < 0.5 * curve[0]


@pytest.mark.parametrize("run", ["small-fixed", "large-fixed", "small-hessian", "large-hessian"])
def test_dynamics_varies_at_some_span_or_says_where_nothing_exceeds_the_noise(trained, run):
    import numpy as np

    tmp, _, printed = trained
    out = tmp / f"out-{run}"
    rows = read(out / "dynamics.csv")
    assert sorted({int(r["step"]) for r in rows}) == list(TRAINED_STEPS)
    assert {float(r["sweep_span"]) for r in rows if r["sweep_span"]} == set(SPANS)
    if run.endswith("hessian"):  # the top / most negative eigenvector plane
        assert {r["direction"] for r in rows} == {"hessian"}
        assert all(float(r["hessian_bottom_eigenvalue"]) < 0 for r in rows)
    sentence = first_sentence(out / "report.html")
    quiet_named = check_noise_sentence(sentence, rows, "checkpoint", "step")
    (line,) = [x for x in printed[run].splitlines() if x.startswith("noise: ")]
    assert sentence.startswith(line.removeprefix("noise: "))  # the command says it too
    # A metric that varies over the steps at some span, with intervals over direction seeds
    varies = False
    for metric in ("n_saddles_above_noise", "n_saddles", "average_persistence_relative"):
        points = [p for p in read(out / "series.csv") if p["metric"] == metric]
        for series in {p["series"] for p in points}:
            own = [p for p in points if p["series"] == series]
            span = float(series.rsplit("@ span ", 1)[1])
            for p in own:  # each point the mean of its rows at its span, inside its interval
                values = [float(r[metric]) for r in rows if r["step"] == p["step"]
                          and r["sweep_span"] and float(r["sweep_span"]) == span]  # fmt: skip
                assert float(p["mean"]) == pytest.approx(np.mean(values))
                if p["ci_low"] != "nan":
                    assert float(p["ci_low"]) <= float(p["mean"]) <= float(p["ci_high"])
            finite = any(p["ci_low"] != "nan" for p in own)
            varies |= len({p["mean"] for p in own}) > 1 and finite
    assert varies or quiet_named


@pytest.mark.parametrize("policy", ["fixed", "hessian"])
def test_compare_of_the_sizes_shows_each_span(trained, policy):
    tmp, _, printed = trained
    out = tmp / f"cmp-{policy}"
    rows = read(out / "runs.csv")
    sentence = first_sentence(out / "report.html")
    quiet_named = check_noise_sentence(sentence, rows, "run", "run")
    (line,) = [x for x in printed[f"cmp-{policy}"].splitlines() if x.startswith("noise: ")]
    assert sentence.startswith(line.removeprefix("noise: "))
    relations = read(out / "compare.csv")
    assert {float(r["sweep_span"]) for r in relations if r["sweep_span"]} == set(SPANS)
    summary = [r for r in read(out / "summary.csv") if r["sweep_span"]]
    varies = False
    for span in SPANS:
        own = [r for r in summary if float(r["sweep_span"]) == span]
        for r in own:
            values = [float(x["average_persistence"]) for x in rows if x["model"] == r["model"]
                      and x["sweep_span"] and float(x["sweep_span"]) == span]  # fmt: skip
            assert float(r["average_persistence_mean"]) == pytest.approx(sum(values) / len(values))
            if r["average_persistence_ci_low"] != "nan":
                assert (
                    float(r["average_persistence_ci_low"])
                    <= float(r["average_persistence_mean"])
                    <= float(r["average_persistence_ci_high"])
                )
                varies = True
    assert varies or quiet_named
    assert any(p.name.startswith("spans-") for p in (out / "figures").iterdir())


def test_compare_of_a_sweep_gives_each_spans_distances_equal_to_gudhi(trained):
    import gudhi
    import numpy as np

    tmp, _, _ = trained
    table = read(tmp / "cmp-hessian" / "distances.csv")
    assert sorted(float(r["sweep_span"]) for r in table) == SPANS  # one pair of runs per span

    def diagram(name, span):
        tag = f"{span:g}".replace(".", "p")
        path = (
            tmp / f"out-{name}-hessian" / "step60" / "2d" / f"pairs-hessian-span{tag}-grid-full.npz"
        )
        with np.load(path) as z:
            return np.stack([z["birth"], z["death"]], axis=1)

    for r in table:
        span = float(r["sweep_span"])
        expected = gudhi.bottleneck_distance(diagram("small", span), diagram("large", span))
        assert float(r["bottleneck"]) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert (tmp / "cmp-hessian" / "figures" / "distances-span0p3.png").exists()
