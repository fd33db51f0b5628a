"""`saddles landscape` and `saddles hessian` on tiny random Hugging Face models (GPT-2 and
GPT-NeoX, Pythia's architecture) saved in a temporary folder, with dict token batches."""

from __future__ import annotations

import json
import re
import shutil
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from saddles.cli import app
from saddles.landscape import Landscape

transformers = pytest.importorskip("transformers")
runner = CliRunner()
VOCAB = 32

LOSSES = textwrap.dedent(
    """
    import torch.nn.functional as F

    def first_token_loss(model, batch):
        ids = batch["input_ids"]
        logits = model(input_ids=ids).logits
        return F.cross_entropy(logits[:, 0], ids[:, 1])
    """
)


def _save(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """Folders holding a tiny GPT-2 and a tiny GPT-NeoX, token files and a loss module."""
    tmp = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=1, n_embd=8, n_head=2, vocab_size=VOCAB, n_positions=16, bos_token_id=0,
        eos_token_id=0))  # fmt: skip
    neox = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        num_hidden_layers=2, hidden_size=8, num_attention_heads=2, intermediate_size=16,
        vocab_size=VOCAB, max_position_embeddings=16, bos_token_id=0,
        eos_token_id=0))  # fmt: skip
    _save(gpt2, tmp / "gpt2")
    _save(neox, tmp / "neox")
    ids = torch.randint(0, VOCAB, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    torch.save({"input_ids": ids, "attention_mask": mask}, tmp / "tokens.pt")
    torch.save([{"input_ids": ids[:2]}, {"input_ids": ids[2:]}], tmp / "two_batches.pt")
    torch.save({"input_ids": ids + VOCAB}, tmp / "past_vocab.pt")
    torch.save(gpt2.state_dict(), tmp / "gpt2_state.pt")
    (tmp / "losses.py").write_text(LOSSES)
    (tmp / "no_model").mkdir()
    (tmp / "no_model" / "notes.txt").write_text("nothing here")
    shutil.copytree(tmp / "neox", tmp / "mixed")  # a NeoX config with GPT-2 weights
    shutil.copy(tmp / "gpt2" / "model.safetensors", tmp / "mixed" / "model.safetensors")
    return tmp, {"ids": ids, "mask": mask}


def _run(*args):
    result = runner.invoke(app, [*map(str, args)])
    result.text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())
    return result


def _hf(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")


@pytest.mark.parametrize("arch", ["gpt2", "neox"])
def test_landscape_of_an_hf_folder_with_dict_tokens_and_causal_lm(lm, arch, one_thread):
    tmp, tokens = lm
    out = tmp / f"land-{arch}"
    result = _run("landscape", "--model", f"hf:{tmp / arch}", "--data", tmp / "tokens.pt",
                  "--criterion", "causal_lm", "--grid", "3", "--engine", "batched",
                  "--quiet", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.text
    assert "random initialization" not in result.text  # the folder holds the weights
    land = Landscape.load(out / "landscape")
    with torch.no_grad():  # HF's own loss: the same shift, padding left out through labels
        labels = tokens["ids"].masked_fill(tokens["mask"] == 0, -100)
        ref = _hf(tmp / arch)(input_ids=tokens["ids"], attention_mask=tokens["mask"],
                              labels=labels).loss  # fmt: skip
    assert land.info["center_loss"] == pytest.approx(float(ref), rel=1e-5)
    assert land.loss[4] == pytest.approx(float(ref), rel=1e-5)
    assert {e for *_, e in land.info["chunk_engines"]} == {"batched"}  # vmap ran the model
    assert land.info["fallback"] is None
    assert np.ptp(land.loss) > 0


def test_hessian_restricted_to_one_block_matches_torch_func(lm, one_thread):
    tmp, tokens = lm
    block = "gpt_neox.layers.1.attention.dense.*"
    out = tmp / "hess"
    result = _run("hessian", "--model", f"hf:{tmp / 'neox'}", "--data", tmp / "tokens.pt",
                  "--criterion", "causal_lm", "--params-include", block, "--float64",
                  "--top-k", "3", "--trace-method", "exact", "--n-lanczos", "10",
                  "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.text
    report = json.loads((out / "hessian.json").read_text())
    assert report["parameters"] == ["gpt_neox.layers.1.attention.dense.weight",
                                    "gpt_neox.layers.1.attention.dense.bias"]  # fmt: skip
    assert report["dim"] == 72 and report["params"]["n_tensors"] == 2

    from saddles.io.data import causal_lm_loss

    model = _hf(tmp / "neox").double().eval()
    named = {n: p.detach() for n, p in model.named_parameters()}
    names = report["parameters"]
    batch = {"input_ids": tokens["ids"], "attention_mask": tokens["mask"]}

    def loss_of(flat):
        pieces = dict(zip(names, flat.split([64, 8]), strict=True))
        swapped = {**named, **{n: pieces[n].reshape(named[n].shape) for n in names}}

        class Call(torch.nn.Module):
            def forward(self, input_ids, attention_mask=None):
                kw = {"input_ids": input_ids, "attention_mask": attention_mask}
                return torch.func.functional_call(model, swapped, (), kw)

            def get_input_embeddings(self):
                return model.get_input_embeddings()

        return causal_lm_loss(Call(), batch)

    flat = torch.cat([named[n].reshape(-1) for n in names])
    exact = torch.func.hessian(loss_of)(flat)
    eig = torch.linalg.eigvalsh(exact).flip(0)
    np.testing.assert_allclose(report["eigen"]["eigenvalues"], eig[:3].numpy(), rtol=1e-6,
                               atol=1e-9)  # fmt: skip
    assert report["trace"]["value"] == pytest.approx(float(exact.trace()), rel=1e-8)


def test_a_custom_loss_indexes_the_dict_batch(lm, one_thread):
    tmp, tokens = lm
    out = tmp / "custom"
    result = _run("landscape", "--model", f"hf:{tmp / 'gpt2'}", "--data", tmp / "two_batches.pt",
                  "--loss", f"{tmp / 'losses.py'}:first_token_loss", "--grid", "3",
                  "--params-include", "transformer.h.0.*", "--params-exclude", "*ln_*",
                  "--quiet", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.text
    land = Landscape.load(out / "landscape")
    assert land.info["data"]["n_batches"] == 2
    assert land.info["params"]["spec"] == {"include": ["transformer.h.0.*"],
                                           "exclude": ["*ln_*"]}  # fmt: skip
    assert 0 < land.info["params"]["n_scalars"] < land.info["params"]["n_scalars_total"]
    assert "parameters moved" in result.text


def test_bad_inputs_are_one_line_errors(lm):
    tmp, _ = lm
    neox, tokens = f"hf:{tmp / 'neox'}", tmp / "tokens.pt"
    base = ["--quiet", "--grid", "3", "--criterion", "causal_lm"]
    cases = [
        (["--model", f"hf:{tmp / 'no_model'}", "--data", tokens], "holds no model"),
        (["--model", f"hf:{tmp / 'absent'}", "--data", tokens], "not a folder"),
        (["--model", f"hf:{tmp / 'mixed'}", "--data", tokens], "another architecture"),
        (
            ["--model", neox, "--checkpoint", tmp / "gpt2_state.pt", "--data", tokens],
            "does not match the model",
        ),
        (["--model", neox, "--data", tmp / "past_vocab.pt"], "vocabulary has 32 entries"),
        (
            ["--model", neox, "--data", tokens, "--params-include", "gpt_neox.layers.7.*"],
            "'gpt_neox.layers.7.*' matches no parameter name",
        ),
    ]
    for i, (args, message) in enumerate(cases):
        result = _run("landscape", *args, *base, "--out", tmp / f"bad{i}")
        assert result.exit_code == 2, (args, result.text)
        assert message in result.text, (args, result.text)
        assert "Traceback" not in result.output
    result = _run("landscape", "--model", neox, "--data", tokens, "--criterion", "cross_entropy",
                  "--quiet", "--out", tmp / "bad-keys")  # fmt: skip
    assert result.exit_code == 2 and "needs the keys ['inputs', 'targets']" in result.text
    result = _run("hessian", "--model", neox, "--data", tokens, "--criterion", "causal_lm",
                  "--params-exclude", "*", "--out", tmp / "bad-h")  # fmt: skip
    assert result.exit_code == 2 and "selects no parameter" in result.text


def test_run_yaml_with_an_hf_model_params_and_eval_tokens(lm, one_thread):
    import yaml

    tmp, _ = lm
    config = {
        "model": "hf:neox",  # relative to the YAML file's folder
        "data": "tokens.pt",
        "criterion": "causal_lm",
        "params": {"include": ["gpt_neox.layers.1.attention.dense.*"]},
        "out": "runs",
        "analysis": {
            "directions": ["random", "hessian"],
            "resolution": 5,
            "representations": ["grid-full"],
            "hessian_top_k": 2,
            "trace_matvecs": 6,
            "density_lanczos": 4,
            "noise_points": 0,
            "eval_tokens": 12,
            "autocast": "bf16",
        },  # fmt: skip
    }
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    result = _run("run", tmp / "run.yaml", "--quiet")
    assert result.exit_code == 0, result.text
    run = tmp / "runs" / "neox"  # the name: the folder's
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["hessian"]["n_params"] == 72
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["params"] == config["params"] and saved["eval_tokens"] == 12
    land = Landscape.load(run / "landscape-hessian" / "landscape")
    assert land.info["params"]["n_scalars"] == 72 and land.info["autocast"] == "bf16"
    assert land.info["data"] == {"n_batches": 1, "n_samples": 2, "eval_tokens": 12,
                                 "n_tokens": 12}  # fmt: skip


@pytest.fixture(scope="module")
def revision(lm):
    """Another training step of the GPT-NeoX model, as save_pretrained writes it (its head
    stored as 'embed_out', the name transformers gives it in files, not in memory)."""
    tmp, _ = lm
    torch.manual_seed(7)
    config = transformers.AutoConfig.from_pretrained(tmp / "neox")
    other = transformers.GPTNeoXForCausalLM(config)
    _save(other, tmp / "neox_step300")
    return tmp / "neox_step300"


def _lm_loss(folder, tokens):
    from saddles.io.data import causal_lm_loss

    with torch.no_grad():
        return float(causal_lm_loss(_hf(folder).eval(), tokens))


def test_checkpoint_file_of_an_hf_revision_uses_its_stored_names(lm, revision, one_thread):
    tmp, batch = lm
    tokens = {"input_ids": batch["ids"], "attention_mask": batch["mask"]}
    from safetensors.torch import load_file

    assert "embed_out.weight" in load_file(str(revision / "model.safetensors"))
    out = tmp / "land-rev"
    result = _run("landscape", "--model", f"hf:{tmp / 'neox'}", "--checkpoint",
                  revision / "model.safetensors", "--data", tmp / "tokens.pt",
                  "--criterion", "causal_lm", "--directions", "1", "--grid", "3",
                  "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    land = Landscape.load(out)
    centre = _lm_loss(revision, tokens)
    assert land.loss[1] == pytest.approx(centre, rel=1e-5)
    assert centre != pytest.approx(_lm_loss(tmp / "neox", tokens), rel=1e-3)


def test_to_takes_a_checkpoint_folder(lm, revision, one_thread):
    tmp, batch = lm
    tokens = {"input_ids": batch["ids"], "attention_mask": batch["mask"]}
    out = tmp / "land-to"
    result = _run("landscape", "--model", f"hf:{tmp / 'neox'}", "--to", revision,
                  "--data", tmp / "tokens.pt", "--criterion", "causal_lm", "--grid", "3",
                  "--range", "0,1", "--out", out, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    land = Landscape.load(out)
    assert land.loss[0] == pytest.approx(_lm_loss(tmp / "neox", tokens), rel=1e-5)
    assert land.loss[-1] == pytest.approx(_lm_loss(revision, tokens), rel=1e-5)


def test_load_into_matches_what_transformers_loads(lm, revision):
    from saddles.io.checkpoints import load_into

    tmp, _ = lm
    expected = _hf(revision).state_dict()
    for source in (revision, revision / "model.safetensors"):
        model = _hf(tmp / "neox")
        load_into(model, source)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, expected[name]), (source, name)
    # GPT-2 ties its head to the embedding and stores it once
    gpt2 = transformers.GPT2LMHeadModel(_hf(tmp / "gpt2").config)
    load_into(gpt2, tmp / "gpt2" / "model.safetensors")
    assert torch.equal(gpt2.lm_head.weight, _hf(tmp / "gpt2").lm_head.weight)
