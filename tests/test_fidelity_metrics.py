"""Metrics a clone cannot game, on hand-made inputs with known answers: detectability (the automatic Turing test),
the style classifier's ROC AUC and the separation check that uses it, assistant-isms, context use (on tiny models
built to ignore or to copy their context), lines per turn; their place in evaluate_clone's outputs; and samples
answered while training (samples.md at each evaluation, the training run unchanged, W&B text only when opted in)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from chatclone.config.fidelity import ASSISTANT_PHRASES
from chatclone.errors import ChatcloneError
from chatclone.evaluation.data import Context
from chatclone.metrics import load_metric
from chatclone.metrics.rates import auc_interval, format_rate, rate, roc_auc, separation, wilson_interval
from tests.conftest import compose
from tests.test_evaluate_clone import trained  # noqa: F401  (the tiny train run fixture)
from tests.test_metrics import _styled

WORDS = ["moss", "moon", "night", "fern", "walk", "lamp", "rain", "tea", "ok", "lol", "yeah", "maybe", "pizza"]


def _draw(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))


@pytest.fixture(scope="module")
def detectability():
    return load_metric("detectability")


# ---- detectability -------------------------------------------------------------------------------------------------


def test_detectability_is_chance_for_two_halves_of_one_generator(detectability):
    rng = random.Random(0)
    texts = [_draw(rng) for _ in range(120)]
    result = detectability.compute(predictions=texts[::2], references=texts[1::2], folds=5)
    low, high = result["detected"]["ci95"]
    assert low <= 0.5 <= high and 0.3 < result["accuracy"] < 0.7, result
    assert result["detected"]["n"] == 120 and result["pairs"] == 60 and result["folds"] == 5
    assert result["detected"]["ci95"] == list(wilson_interval(result["detected"]["successes"], 120))
    assert result["auc"]["ci95"][0] <= 0.5 <= result["auc"]["ci95"][1]
    again = detectability.compute(predictions=texts[::2], references=texts[1::2], folds=5)
    assert again == result  # deterministic


def test_detectability_is_total_for_obviously_different_replies(detectability):
    rng = random.Random(1)
    model = [f"lowkey {_draw(rng)} fr!! 🌙" for _ in range(30)]
    real = [f"Indeed, I find {_draw(rng).upper()} rather agreeable; thank you." for _ in range(30)]
    result = detectability.compute(predictions=model, references=real, folds=5)
    assert result["accuracy"] == 1.0 and result["detected"] == rate(60, 60)
    assert result["auc"]["auc"] == 1.0 and result["fold_accuracies"] == [1.0] * 5


def test_detectability_of_a_model_that_copies_the_real_replies_is_exactly_chance(detectability):
    rng = random.Random(2)
    texts = [_draw(rng) for _ in range(12)]
    # a context's two replies are held out together: the same text gets the same P(model), so one of them is wrong
    assert detectability.compute(predictions=texts, references=texts, folds=4)["accuracy"] == 0.5


def test_detectability_with_fewer_pairs_than_folds_and_too_few(detectability):
    small = detectability.compute(
        predictions=["lowkey moss 🌙", "lowkey fern 🌙", "lowkey tea 🌙"],
        references=["Indeed, MOSS.", "Indeed, FERN.", "Indeed, TEA."],
        folds=5,
    )
    assert small["folds"] == 3 and small["folds_asked"] == 5 and small["detected"]["n"] == 6
    with pytest.raises(ChatcloneError, match="needs at least 2 contexts with a real and a model reply each, not 1"):
        detectability.compute(predictions=["a"], references=["b"], folds=5)
    with pytest.raises(ChatcloneError, match="folds must be at least 2, not 1"):
        detectability.compute(predictions=["a", "b"], references=["c", "d"], folds=1)


# ---- the style classifier's ROC AUC and the separation check -------------------------------------------------------


def test_roc_auc_and_its_interval_on_hand_computed_values():
    # pairs (positive > negative): 0.9>0.7, 0.9>0.85, 0.8>0.7, 0.8<0.85: 3 of 4
    result = roc_auc([0.9, 0.8], [0.7, 0.85])
    assert result["auc"] == 0.75 and (result["positives"], result["negatives"]) == (2, 2)
    # Hanley & McNeil: q1 = 0.75/1.25 = 0.6, q2 = 2*0.5625/1.75 = 0.642857; var = (0.1875 + 0.0375 + 0.080357)/4
    half = 1.959964 * (0.305357 / 4) ** 0.5
    assert result["ci95"] == pytest.approx([0.75 - half, 1.0], abs=1e-5)
    assert auc_interval(1.0, 30, 30) == (1.0, 1.0) and auc_interval(0.5, 1000, 1000)[1] - 0.5 < 0.03
    with pytest.raises(ChatcloneError, match="at least one text of each class"):
        roc_auc([0.3], [])


def test_style_auc_on_separable_and_inseparable_hand_made_sets():
    rng = random.Random(0)
    train = [(_styled(rng, k % 3 == 0), k % 3 == 0) for k in range(120)]
    metric = load_metric("style_attribution").fit([t for t, _ in train], [y for _, y in train])
    mine, others = [_styled(rng, True) for _ in range(30)], [_styled(rng, False) for _ in range(30)]
    clear = metric.separation_auc(mine, others)
    assert clear["auc"] > 0.95 and clear["ci95"][0] > 0.5 and (clear["positives"], clear["negatives"]) == (30, 30)
    # the same style on both sides, labels by chance: the classifier cannot rank the target's texts
    texts = [_draw(rng) for _ in range(240)]
    blind = load_metric("style_attribution").fit(texts[:180], [k % 3 == 0 for k in range(180)])
    same = blind.separation_auc(texts[180:210], texts[210:])
    assert same["ci95"][0] <= 0.5 <= same["ci95"][1], same
    check = separation(rate(28, 30), rate(2, 30), 48, 20, 0.2, auc=same, min_auc=0.7)
    assert not check["separable"] and check["auc"] == same and check["min_auc"] == 0.7
    assert any("ROC AUC on real held-out messages" in r and "not clearly above chance" in r for r in check["reasons"])
    assert any(f"is only {same['auc']:.2f} (at least 0.70" in r for r in check["reasons"])
    assert separation(rate(28, 30), rate(2, 30), 48, 20, 0.2, auc=clear, min_auc=0.7)["separable"]
    with pytest.raises(ChatcloneError, match="needs texts by the target and by someone else"):
        metric.separation_auc(mine, [])


# ---- assistant-isms ------------------------------------------------------------------------------------------------


def test_assistant_isms_on_hand_written_replies():
    replies = [
        "Certainly! I'd be happy to help with that.",  # two phrases, one reply
        "lol no",
        "As an AI language model, I can't eat pizza",  # "as an AI" and "AI language model"
        "he has an AIM account from 2004",  # not "as an AI": inside words
        "feel FREE   to come by later",  # any case, any spaces
        "I’d be happy to!! 😅",  # curly apostrophe
        "certainly not",  # "Certainly!" needs its "!"
        "we should feel freeto... no",
    ]
    phrases = ["as an AI", "AI language model", "I'd be happy to", "feel free to", "Certainly!", "How can I assist"]
    result = load_metric("assistant_isms").compute(predictions=replies, phrases=phrases)
    assert result["assistant"] == rate(4, 8) and result["rate"] == 0.5
    assert result["phrase_counts"] == {
        "as an AI": 1,
        "AI language model": 1,
        "I'd be happy to": 2,
        "feel free to": 1,
        "Certainly!": 1,
        "How can I assist": 0,
    }
    assert result["examples"] == [replies[0], replies[2], replies[4]]
    none = load_metric("assistant_isms").compute(predictions=["lol no", "ok"], phrases=list(ASSISTANT_PHRASES))
    assert none["assistant"] == rate(0, 2)
    with pytest.raises(ChatcloneError, match="empty phrase"):
        load_metric("assistant_isms").compute(predictions=["x"], phrases=["  "])
    with pytest.raises(ChatcloneError, match="no phrases"):
        load_metric("assistant_isms").compute(predictions=["x"], phrases=[])


def test_assistant_phrases_are_the_same_in_the_schema_and_both_configs():
    assert compose("evaluate_clone", []).eval.assistant_phrases == list(ASSISTANT_PHRASES)
    assert compose("train", []).eval.assistant_phrases == list(ASSISTANT_PHRASES)
    assert compose("evaluate_clone", ["eval.assistant_phrases=[]"]).eval.assistant_phrases == []
    for bad, message in (
        (["eval.assistant_phrases=['ok',' ']"], r"eval.assistant_phrases\[1\]=' ': must be a phrase"),
        (["eval.detectability_folds=1"], "eval.detectability_folds=1: must be at least 2"),
        (["eval.min_attribution_auc=1.5"], r"eval.min_attribution_auc=1.5: must be in \[0, 1\)"),
    ):
        with pytest.raises(ChatcloneError, match=message):
            compose("evaluate_clone", bad).check()
    with pytest.raises(ChatcloneError, match="eval.sample_contexts: must be >= 0"):
        compose("train", ["eval.sample_contexts=-1"]).check()
    with pytest.raises(Exception, match="sample_contexts"):  # Hydra's composition error
        compose("evaluate_clone", ["eval.sample_contexts=3"])  # a train.py key: evaluate_clone trains nothing


# ---- context use ---------------------------------------------------------------------------------------------------


def test_context_use_metric_on_hand_computed_nlls():
    result = load_metric("context_use").compute(
        real_nll_sums=[2.0, 3.0, 1.0, 5.0],
        real_token_counts=[2, 3, 1, 0],
        swapped_nll_sums=[4.0, 3.0, 2.0, 1.0],
        swapped_token_counts=[2, 3, 1, 1],
    )
    # the last reply has no token under its real context: left out. Real 6 nats / 6 tokens, swapped 9 / 6.
    assert result["pairs"] == 3 and result["gain"] == pytest.approx(0.5)
    assert result["perplexity_real"] == pytest.approx(2.718281828) and result["perplexity_ratio"] == pytest.approx(
        1.6487212707
    )
    assert result["own_context_wins"] == rate(2, 3)  # per-token gains 1, 0 (a tie is no win), 1
    assert result["mean_pair_gain"] == pytest.approx(2 / 3)
    with pytest.raises(ChatcloneError, match="no reply has tokens under both contexts"):
        load_metric("context_use").compute(
            real_nll_sums=[0.0], real_token_counts=[0], swapped_nll_sums=[1.0], swapped_token_counts=[1]
        )


TOPICS = [
    ("pizza tonight at marco's?", "pizza at marco's sounds great"),
    ("did you finish the physics homework?", "physics homework is done"),
    ("want to walk the dog by the river?", "river walk with the dog yes"),
    ("is the concert on friday still happening?", "concert friday still happening"),
    ("can you bring the green umbrella?", "bringing the green umbrella"),
    ("how was the dentist appointment?", "dentist appointment was fine"),
]


def _contexts() -> list[Context]:
    return [
        Context(i, f"record-{i}", [{"role": "user", "name": "Orrin", "content": question}], reply)
        for i, (question, reply) in enumerate(TOPICS)
    ]


def test_swapped_contexts_take_another_conversation():
    from chatclone.evaluation.context import swapped_contexts

    contexts = _contexts()
    pairs = swapped_contexts(contexts)
    assert [c.turn for c, _ in pairs] == list(range(6))
    assert [other for _, other in pairs] == [contexts[(i + 3) % 6].history for i in range(6)]
    same_record = [
        Context(0, "r", [{"role": "user", "name": "A", "content": "x"}], "a"),
        Context(1, "r", [{"role": "user", "name": "A", "content": "y"}], "b"),
        Context(2, "s", [{"role": "user", "name": "A", "content": "z"}], "c"),
    ]
    assert [other[0]["content"] for _, other in swapped_contexts(same_record)] == ["z", "z", "x"]
    no_history = [Context(0, "r", [], "a"), Context(1, "s", [{"role": "user", "name": "A", "content": "y"}], "b")]
    assert swapped_contexts(no_history) == []


def _built_model(tokenizer, copies: bool, hidden: int = 256):
    """A one-layer Llama with no MLP whose attention either adds nothing (o_proj = 0: each position sees only its own
    token, so the context cannot matter) or averages the tokens so far into the prediction (q = k = 0: uniform
    attention; v = identity, o = 10 x identity; tied embeddings: tokens already said become likelier)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0, 1)
        layer = model.model.layers[0]
        layer.mlp.down_proj.weight.zero_()
        if copies:
            layer.self_attn.q_proj.weight.zero_()
            layer.self_attn.k_proj.weight.zero_()
            layer.self_attn.v_proj.weight.copy_(torch.eye(hidden))
            layer.self_attn.o_proj.weight.copy_(10 * torch.eye(hidden))
        else:
            layer.self_attn.o_proj.weight.zero_()
    return model


@pytest.fixture(scope="module")
def tokenizer(embedded_dir):
    from chatclone.modeling import load_tokenizer

    return load_tokenizer(embedded_dir)


def test_context_use_is_none_for_a_model_that_cannot_see_its_context(tokenizer):
    from chatclone.evaluation.context import context_examples, swapped_contexts
    from chatclone.evaluation.passes import context_pass
    from chatclone.formatting import Style
    from chatclone.generation.prompt import PromptFormat

    fmt = PromptFormat("tamsin", Style(), tokenizer.chat_template, "<|im_end|>", 256)
    pairs = swapped_contexts(_contexts())
    real, swapped = context_examples(tokenizer, fmt, pairs)
    reply_ids = tokenizer(TOPICS[0][1] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert [t for t in real[0]["labels"] if t != -100] == reply_ids  # the reply and its end of turn, nothing else
    assert [t for t in swapped[0]["labels"] if t != -100] == reply_ids and swapped[0]["input_ids"] != real[0][
        "input_ids"
    ]
    blind = context_pass(
        SimpleNamespace(
            model=_built_model(tokenizer, copies=False), tokenizer=tokenizer, spec=SimpleNamespace(format=fmt)
        ),
        pairs,
        batch_size=4,
    )
    assert blind["pairs"] == 6 and blind["perplexity_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert blind["own_context_wins"] == rate(0, 6)  # every reply ties: the context makes no difference
    reader = context_pass(
        SimpleNamespace(
            model=_built_model(tokenizer, copies=True), tokenizer=tokenizer, spec=SimpleNamespace(format=fmt)
        ),
        pairs,
        batch_size=4,
    )
    assert reader["perplexity_ratio"] > 2 and reader["own_context_wins"] == rate(6, 6) and reader["ci95"][0] > 0
    assert (
        context_pass(
            SimpleNamespace(model=None, tokenizer=tokenizer, spec=SimpleNamespace(format=fmt)), [], batch_size=4
        )
        is None
    )


# ---- lines per turn ------------------------------------------------------------------------------------------------


def test_lines_per_reply_and_their_ks_distance():
    surface = load_metric("surface_stats")
    result = surface.compute(
        predictions=["one line", "two\nlines", "", "a\n\nb\nc"], target_replies=["x\ny", "x\ny", "x\ny", "x\ny"]
    )
    generated = result["generated"]
    assert generated["mean_lines"] == pytest.approx((1 + 2 + 0 + 3) / 4) and generated["median_lines"] == 1.5
    assert generated["multi_line_rate"] == 0.5 and result["reference"]["mean_lines"] == 2
    assert result["lines_ks"] == pytest.approx(0.5)  # CDFs at 1 line: 2/4 of the replies vs none of the real ones
    assert result["lines_wasserstein"] == pytest.approx((1 + 0 + 2 + 1) / 4)


# ---- in evaluate_clone's outputs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):  # noqa: F811
    from chatclone.stages.evaluate_clone import evaluate_clone

    out = tmp_path_factory.mktemp("fidelity-metrics") / "run"
    cfg = compose(
        "evaluate_clone",
        [f"outputs_root={trained}", "eval.max_contexts=4", "sampling.max_new_tokens=4", "wandb.mode=disabled"],
    )
    console = Console(file=io.StringIO(), width=220)
    return out, evaluate_clone(cfg, out, console=console), console.file.getvalue()


def test_metrics_json_has_every_new_measure_with_n_and_interval(evaluated):
    out, _, _ = evaluated
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for name in ("base", "fine_tuned"):
        m = saved["models"][name]
        d = m["detectability"]
        assert d["n"] == 8 and d["pairs"] == 4 and d["folds"] == 4 and d["folds_asked"] == 5
        assert d["ci95"] == pytest.approx(list(wilson_interval(d["successes"], 8)))
        a = m["assistant_isms"]
        assert a["n"] == 4 and a["ci95"] == pytest.approx(list(wilson_interval(a["successes"], 4)))
        c = m["context_use"]
        assert c["pairs"] >= 2 and c["own_context_wins"]["n"] == c["pairs"] and c["perplexity_swapped"] > 0
        assert "lines_ks" in m["surface"] and "mean_lines" in m["surface"]
        h = saved["headline"]
        assert h[f"detectability_{name}"] == d["rate"] and h[f"assistant_isms_{name}"] == a["rate"]
        assert h[f"context_ratio_{name}"] == c["perplexity_ratio"] and h[f"lines_ks_{name}"] == m["surface"]["lines_ks"]
    auc = saved["attribution_auc"]
    assert auc["positives"] == saved["ceiling"]["n"] and auc["negatives"] == saved["floor"]["n"]
    assert saved["attribution_check"]["auc"] == auc and saved["headline"]["attribution_auc"] == auc["auc"]
    assert saved["reference_assistant_isms"]["n"] == 4 and saved["detectability_note"] is None


def test_report_and_table_show_the_new_measures(evaluated):
    out, metrics, printed = evaluated
    report = (out / "report.md").read_text(encoding="utf-8")
    m = metrics["models"]
    for name in ("base", "fine_tuned"):
        assert format_rate(m[name]["detectability"]) in report and format_rate(m[name]["detectability"]) in printed
        assert format_rate(m[name]["context_use"]["own_context_wins"]) in report
        assert format_rate(m[name]["assistant_isms"]) in printed
    assert "Detectability (the automatic Turing test: 4-fold cross-validated" in report
    assert "**Detectability**" in report and "**Context use**" in report and "**Assistant-isms**" in report
    assert format_rate(metrics["reference_assistant_isms"]) in report
    assert "lines per reply vs the real replies: KS statistic" in report
    for row in (
        "detectability (50% = indistinguishable)",
        "own context more likely",
        "mean lines per reply",
        "style classifier ROC AUC, target vs others",
        "assistant-isms",
    ):
        assert row in printed
    assert "style classifier: ROC AUC" in printed


def test_one_context_is_too_few_for_detectability(trained, tmp_path):  # noqa: F811
    from chatclone.stages.evaluate_clone import evaluate_clone

    cfg = compose(
        "evaluate_clone",
        [
            f"outputs_root={trained}",
            "eval.max_contexts=1",
            "sampling.max_new_tokens=2",
            "wandb.mode=disabled",
            "eval.base=false",
            "eval.assistant_phrases=[]",
        ],
    )
    console = Console(file=io.StringIO(), width=220)
    metrics = evaluate_clone(cfg, tmp_path / "run", console=console)
    assert metrics["models"]["fine_tuned"]["detectability"] is None
    assert metrics["models"]["fine_tuned"]["assistant_isms"] is None and metrics["reference_assistant_isms"] is None
    assert metrics["models"]["fine_tuned"]["context_use"] is None  # one context: nothing to swap with
    note = "cross-validating a classifier needs at least 2 contexts with a real and a model reply, and only 1"
    assert note in metrics["detectability_note"] and note in " ".join(console.file.getvalue().split())
    assert note in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


# ---- samples while training ----------------------------------------------------------------------------------------


def _sampling_run(root: Path, model: Path, run_dir: Path, *more: str) -> tuple[dict, str]:
    from chatclone.stages.train import train
    from tests.test_train import tiny_overrides

    overrides = tiny_overrides(
        root,
        model,
        "trainer.max_steps=2",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=1",
        "trainer.learning_rate=5e-2",
        *more,
    )
    console = Console(file=io.StringIO(), width=220)
    return train(compose("train", overrides), run_dir, console=console), console.file.getvalue()


@pytest.fixture(scope="module")
def sampled(dm_tokenized, tiny_llama, tmp_path_factory):
    run = tmp_path_factory.mktemp("sampled") / "run"
    metrics, printed = _sampling_run(dm_tokenized, tiny_llama, run, "eval.sample_contexts=2", "wandb.mode=offline")
    return run, metrics, printed


def test_samples_md_gets_a_section_at_each_evaluation(sampled, dm_tokenized):
    from chatclone import runs
    from chatclone.evaluation.data import load_fidelity_data

    run, metrics, printed = sampled
    text = (run / "samples.md").read_text(encoding="utf-8")
    evaluations = [e for e in metrics["log_history"] if "eval_loss" in e]  # steps 1, 2 and train.py's final one
    sections = [line for line in text.splitlines() if line.startswith("## step ")]
    assert len(sections) == len(evaluations) == 3
    assert [s.split(",")[0] for s in sections] == [f"## step {e['step']}" for e in evaluations]
    assert f"validation loss {evaluations[0]['eval_loss']:.4f}" in sections[0]
    contexts = load_fidelity_data(dm_tokenized / "tokenize_dataset" / "run", 2).contexts
    assert text.count("- clone: `") == 3 * 2 and text.count(f"### validation turn {contexts[0].turn}") == 3
    assert f"- real: `{contexts[0].reply.replace(chr(10), ' ⏎ ')}`" in text
    assert printed.count("samples at step") == 3 and "clone: " in printed
    assert "samples.md" in runs.read_manifest(run)["outputs"]


def test_samples_leave_the_training_run_unchanged(sampled, dm_tokenized, tiny_llama, tmp_path):
    _, with_samples, _ = sampled
    without, printed = _sampling_run(dm_tokenized, tiny_llama, tmp_path / "run", "eval.sample_contexts=0")
    assert not (tmp_path / "run" / "samples.md").exists() and "samples at step" not in printed

    def curve(metrics: dict) -> list:
        return [
            (e["step"], e.get("loss"), e.get("eval_loss"), e.get("grad_norm"))
            for e in metrics["log_history"]
            if "loss" in e or "eval_loss" in e
        ]

    assert curve(without) == curve(with_samples)  # generation drew no random number training would have drawn


def _wandb_blob(run: Path) -> bytes:
    (offline,) = list((run / "wandb").glob("offline-run-*"))
    return b"".join(p.read_bytes() for p in offline.rglob("*") if p.is_file())


def test_wandb_gets_sample_text_only_when_opted_in(sampled, dm_tokenized, tiny_llama, tmp_path):
    from chatclone.evaluation.data import load_fidelity_data

    run, _, _ = sampled
    real = load_fidelity_data(dm_tokenized / "tokenize_dataset" / "run", 2).contexts[0].reply
    line = max(real.splitlines(), key=len).encode()  # a line of the real reply (samples.md joins lines with ⏎)
    assert len(line) > 8 and line in (run / "samples.md").read_bytes()
    assert (
        b"eval/loss" in _wandb_blob(run) and line not in _wandb_blob(run) and b"train/samples" not in _wandb_blob(run)
    )
    _sampling_run(
        dm_tokenized,
        tiny_llama,
        tmp_path / "opted",
        "eval.sample_contexts=2",
        "wandb.mode=offline",
        "wandb.log_samples=true",
    )
    blob = _wandb_blob(tmp_path / "opted")
    assert b"train/samples" in blob and line in blob


def test_samples_are_rendered_as_inference_renders_them(dm_tokenized, tiny_llama):
    """The callback's replies are the generation pass's: the same model, contexts and seed through evaluate_clone's
    path give the same text; the model's mode is restored."""
    from chatclone import runs
    from chatclone.config.generation import SamplingConfig
    from chatclone.evaluation.data import load_fidelity_data
    from chatclone.evaluation.passes import generation_pass
    from chatclone.generation.clone import Clone, clone_spec, stop_and_pad_ids
    from chatclone.generation.prompt import PromptBuilder
    from chatclone.modeling import load_model, load_tokenizer
    from chatclone.training.samples import answer_contexts

    data_dir = dm_tokenized / "tokenize_dataset" / "run"
    info = runs.read_manifest(data_dir)["summary"]["model"]
    spec = clone_spec(data_dir, None, str(tiny_llama), data_dir, info)
    contexts = load_fidelity_data(data_dir, 2).contexts
    tokenizer, model = load_tokenizer(data_dir / "tokenizer"), load_model(tiny_llama)
    model.train()
    sampling = SamplingConfig(max_new_tokens=6)
    replies = answer_contexts(model, tokenizer, spec, contexts, seed=3, sampling=sampling)
    assert model.training and len(replies) == 2
    model.eval()
    stops, pad = stop_and_pad_ids(info, tokenizer)
    clone = Clone(spec, model, tokenizer, PromptBuilder(tokenizer, spec.format), stops, pad, "cpu")
    assert [r.text for r in generation_pass(clone, contexts, sampling, 3, None)] == [r.text for r in replies]
