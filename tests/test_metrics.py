"""The clone-fidelity metrics on hand-made inputs with known answers, loaded offline as local evaluate modules."""

from __future__ import annotations

import json
import math
import random
import socket

import pytest

from chatclone.errors import ChatcloneError
from chatclone.metrics import available_metrics, load_metric
from chatclone.metrics.scoring import score_nll
from chatclone.metrics.splits import turn_texts


@pytest.fixture(scope="module")
def perplexity():
    return load_metric("perplexity")


@pytest.fixture(scope="module")
def surface():
    return load_metric("surface_stats")


@pytest.fixture(scope="module")
def tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, pad_token_id=0
    )
    return LlamaForCausalLM(config).eval()


def test_metrics_load_by_local_path_without_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert available_metrics() == [
        "assistant_isms",
        "context_use",
        "detectability",
        "perplexity",
        "style_attribution",
        "surface_stats",
    ]
    for name in available_metrics():
        assert load_metric(name).name == name
    assert attempts == []


@pytest.mark.parametrize("name", ["rouge", "../errors", "Perplexity"])
def test_unknown_metric_is_a_one_line_error(name):
    available = r"\(available: assistant_isms, context_use, detectability, perplexity, style_attribution"
    with pytest.raises(ChatcloneError, match=r"unknown metric .* " + available):
        load_metric(name)


def test_perplexity_is_exp_of_token_weighted_mean_nll(perplexity):
    result = perplexity.compute(nll_sums=[2.0, 4.0, 0.0], token_counts=[1, 3, 0])
    assert result["perplexity"] == pytest.approx(math.exp(6 / 4))
    assert result["mean_nll"] == pytest.approx(1.5)
    assert result["mean_example_perplexity"] == pytest.approx((math.exp(2) + math.exp(4 / 3)) / 2)
    assert (result["tokens"], result["examples"]) == (4, 2)


@pytest.mark.parametrize(
    "sums, counts, message",
    [
        ([0.0], [0], "no labelled tokens"),
        ([1.0], [-1], "negative"),
        ([float("nan")], [2], "finite"),
        ([1.5], [0], "token count is 0"),
    ],
)
def test_perplexity_rejects_bad_inputs(perplexity, sums, counts, message):
    with pytest.raises(ChatcloneError, match=message):
        perplexity.compute(nll_sums=sums, token_counts=counts)


def _random_examples(n: int, vocab: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(3, 14)
        ids = [rng.randrange(1, vocab) for _ in range(length)]
        context = rng.randint(1, length - 1)
        examples.append({"input_ids": ids, "labels": [-100] * context + ids[context:]})
    return examples


def _manual_nll(model, example: dict) -> tuple[float, int]:
    """One example alone, no padding: -sum log p(labels[t] | ids[:t]) over labelled t >= 1."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    scored = [t for t in range(1, len(example["labels"])) if example["labels"][t] != -100]
    return -sum(logprobs[t - 1, example["labels"][t]].item() for t in scored), len(scored)


def test_score_nll_matches_a_manual_computation_from_logits(tiny_llama):
    examples = _random_examples(7, vocab=50)
    examples.append({"input_ids": [5, 6, 7], "labels": [-100, -100, -100]})  # nothing to score
    scores = score_nll(tiny_llama, examples, batch_size=3)  # sorted batches with padding
    manual = [_manual_nll(tiny_llama, ex) for ex in examples]
    assert scores["token_counts"] == [count for _, count in manual]
    assert scores["nll_sums"] == pytest.approx([nll for nll, _ in manual], rel=1e-4, abs=1e-5)
    assert scores["token_counts"][-1] == 0 and scores["nll_sums"][-1] == 0.0
    assert score_nll(tiny_llama, examples, batch_size=1)["nll_sums"] == pytest.approx(scores["nll_sums"], rel=1e-4)


def test_score_nll_feeds_perplexity(tiny_llama, perplexity):
    import torch

    examples = _random_examples(4, vocab=50, seed=2)
    examples[0] = {k: torch.tensor(v) for k, v in examples[0].items()}  # tensors work as well as lists
    scores = score_nll(tiny_llama, examples, batch_size=2)
    result = perplexity.compute(**scores)
    assert result["perplexity"] == pytest.approx(math.exp(sum(scores["nll_sums"]) / sum(scores["token_counts"])))
    assert 1 < result["perplexity"] < 500  # a random 50-token model: near uniform, around 50


def test_score_nll_rejects_malformed_examples(tiny_llama):
    with pytest.raises(ChatcloneError, match="example 0 needs 'input_ids' and 'labels'"):
        score_nll(tiny_llama, [{"input_ids": [1, 2]}])
    with pytest.raises(ChatcloneError, match="example 0 has 2 input_ids, 3 labels"):
        score_nll(tiny_llama, [{"input_ids": [1, 2], "labels": [1, 2, 3]}])


def _styled(rng: random.Random, target: bool) -> str:
    words = ["moss", "moon", "night", "fern", "walk", "lamp", "rain", "tea"]
    picked = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
    if target:
        return f"lowkey {picked} fr!! 🌙"
    return f"Indeed, I find {picked.upper()} rather agreeable; thank you."


def test_style_attribution_on_trivially_separable_styles():
    rng = random.Random(0)
    train = [(_styled(rng, k % 3 == 0), k % 3 == 0) for k in range(120)]
    held_target = [_styled(rng, True) for _ in range(30)]
    held_other = [_styled(rng, False) for _ in range(30)]
    metric = load_metric("style_attribution").fit([t for t, _ in train], [y for _, y in train])
    result = metric.compute(
        predictions=held_target[:20] + held_other[:5], target_replies=held_target, other_texts=held_other
    )
    assert result["texts"] == 25
    assert result["target_rate"] == pytest.approx(20 / 25)
    assert result["ceiling_rate"] > 0.9 and result["ceiling_mean_prob"] > 0.5
    assert result["floor_rate"] < 0.1 and result["floor_mean_prob"] < 0.5
    again = load_metric("style_attribution").fit([t for t, _ in train], [y for _, y in train])
    assert again.target_probabilities(held_target) == metric.target_probabilities(held_target)  # deterministic
    other = load_metric("style_attribution")
    assert other.compute(predictions=held_other, classifier=metric.classifier)["target_rate"] < 0.1


def test_style_attribution_errors():
    metric = load_metric("style_attribution")
    with pytest.raises(ChatcloneError, match="call fit"):
        metric.compute(predictions=["hello"])
    with pytest.raises(ChatcloneError, match="by the target and by someone else"):
        metric.fit(["a b c", "d e f"], [True, True])
    with pytest.raises(ChatcloneError, match="2 texts but 1 labels"):
        metric.fit(["a b c", "d e f"], [True])


HAND_MADE = ["hello world", "Hello there!", "what?", "ok ok ok ok 😂"]


def test_surface_stats_on_hand_computed_examples(surface):
    stats = surface.compute(predictions=HAND_MADE)["generated"]
    assert stats["replies"] == 4
    assert stats["mean_chars"] == pytest.approx((11 + 12 + 5 + 13) / 4)
    assert stats["distinct_1"] == pytest.approx(6 / 10)  # hello world hello there! what? ok ok ok ok 😂
    assert stats["distinct_2"] == pytest.approx(4 / 6)  # hello-world hello-there! ok-ok(x3) ok-😂
    assert stats["self_repeat_rate"] == pytest.approx(1 / 4)  # "ok ok ok" twice
    assert stats["duplicate_rate"] == 0
    assert stats["emoji_rate"] == pytest.approx(1 / 4)
    assert stats["punctuation_rate"] == pytest.approx(2 / 35)  # "!" and "?" among 35 non-space characters
    assert stats["question_rate"] == stats["exclamation_rate"] == pytest.approx(1 / 4)
    assert stats["lowercase_rate"] == pytest.approx(3 / 4)
    assert stats["upper_start_rate"] == pytest.approx(1 / 4)
    assert stats["all_caps_rate"] == 0


def test_surface_stats_casing_counts_only_texts_with_letters(surface):
    stats = surface.compute(predictions=["OK!!", "🌙", "ok", "Ok", "ok", ":frogwave:"])["generated"]
    assert stats["lowercase_rate"] == pytest.approx(2 / 4)
    assert stats["upper_start_rate"] == pytest.approx(2 / 4)
    assert stats["all_caps_rate"] == pytest.approx(1 / 4)
    assert stats["emoji_rate"] == pytest.approx(2 / 6)
    assert stats["duplicate_rate"] == pytest.approx(1 / 6)
    assert stats["punctuation_rate"] == pytest.approx(2 / 11)  # ":frogwave:" is an emoji, not punctuation


def test_surface_stats_against_reference(surface):
    same = surface.compute(predictions=HAND_MADE, target_replies=list(reversed(HAND_MADE)))
    assert same["length_wasserstein"] == 0 and same["length_ks"] == 0
    assert all(v == 0 for v in same["difference"].values())
    shifted = surface.compute(predictions=["a", "bb"], target_replies=["aaa", "bbbb"])
    assert shifted["length_wasserstein"] == pytest.approx(2.0)
    assert shifted["length_ks"] == pytest.approx(1.0)
    assert shifted["difference"]["mean_chars"] == pytest.approx(-2.0)
    assert set(shifted) == {
        "generated",
        "reference",
        "difference",
        "length_wasserstein",
        "length_ks",
        "lines_wasserstein",
        "lines_ks",
    }
    with pytest.raises(ChatcloneError, match="no texts"):
        surface.compute(predictions=["a"], target_replies=[])


def test_turn_texts_counts_window_overlaps_once(tmp_path):
    records = [
        [{"role": "user", "name": "A", "content": "a1"}, {"role": "assistant", "name": "T", "content": "t1"}],
        [
            {"role": "user", "name": "A", "content": "a1"},
            {"role": "assistant", "name": "T", "content": "t1", "train": False},
            {"role": "user", "name": "B", "content": "b1"},
            {"role": "assistant", "name": "T", "content": "t2"},
        ],
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "messages": m}) + "\n" for i, m in enumerate(records)))
    assert turn_texts(path) == (["a1", "t1", "b1", "t2"], [False, True, False, True])
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ChatcloneError, match=r"train.jsonl:1: record has no `messages` list"):
        turn_texts(path)
