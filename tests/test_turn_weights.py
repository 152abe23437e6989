"""trainer.other_turns_weight: the tokens outside the target's turns trained at a reduced loss weight.

Weight 0 is today's target-only loss exactly; weight w gives every other token weight w in a weighted mean; weight
1 is the seeds' no-masking recipe (labels on every token); the validation split is never weighted."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import load_from_disk

from chatclone.errors import ChatcloneError
from chatclone.stages.train import train, weighted_train_split
from chatclone.training.batching import IGNORE, LOSS_WEIGHTS, OTHER_WEIGHT, PadCollator, labelled_loss
from tests.conftest import compose, quiet
from tests.test_train import losses, tiny_overrides

# Two hand-made rows: tokens 5..9 with the target's turn on the last two tokens, and a shorter row (padding).
ROWS = [
    {"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE, IGNORE, IGNORE, 8, 9]},
    {"input_ids": [1, 2, 3], "labels": [IGNORE, 2, IGNORE]},
]


def weighted(rows: list[dict], weight: float) -> list[dict]:
    return [{**r, OTHER_WEIGHT: weight} for r in rows]


def test_weight_zero_collates_exactly_as_target_only():
    plain = PadCollator(pad_token_id=0, labelled_logits=True)(ROWS)
    zero = PadCollator(pad_token_id=0, labelled_logits=True)(weighted(ROWS, 0.0))
    assert LOSS_WEIGHTS not in plain and LOSS_WEIGHTS not in zero
    assert plain.keys() == zero.keys() and all(torch.equal(plain[k], zero[k]) for k in plain)
    assert plain["labels"][0, 1:].tolist() == [8, 9, 2]


def test_weight_w_labels_every_real_token_with_its_weight():
    batch = PadCollator(pad_token_id=0, labelled_logits=True)(weighted(ROWS, 0.25))
    # every real next token is a target: 6 7 8 9 of row 0, 2 3 of row 1; never the padding after row 1
    assert batch["labels"][0, 1:].tolist() == [6, 7, 8, 9, 2, 3]
    assert batch[LOSS_WEIGHTS].tolist() == [0.25, 0.25, 1.0, 1.0, 1.0, 0.25]
    assert batch["input_ids"].flatten()[batch["logits_to_keep"] + 1].tolist() == [6, 7, 8, 9, 2, 3]


def test_weighted_loss_has_the_known_value():
    """Hand-made logits: each kept position scores its target a_i above 3 zeros (vocabulary 4), so its NLL is
    log(exp(a_i) + 3) - a_i; the loss is sum(w_i * nll_i) / sum(w_i)."""
    targets, weights, raised = [1, 2, 3, 0], [0.5, 0.5, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]
    logits = torch.zeros(1, 4, 4)
    for i, (t, a) in enumerate(zip(targets, raised)):
        logits[0, i, t] = a
    labels = torch.tensor([[IGNORE, *targets]])
    nll = [math.log(math.exp(a) + 3) - a for a in raised]
    expected = sum(w * n for w, n in zip(weights, nll)) / sum(weights)
    loss = labelled_loss(SimpleNamespace(logits=logits), labels, loss_weights=torch.tensor(weights))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # over an accumulated batch: the Trainer passes the whole batch's total weight as the denominator
    total = labelled_loss(SimpleNamespace(logits=logits), labels, torch.tensor(6.0), torch.tensor(weights))
    assert total.item() == pytest.approx(sum(w * n for w, n in zip(weights, nll)) / 6.0, rel=1e-6)
    # without weights: today's mean over the labelled tokens
    assert labelled_loss(SimpleNamespace(logits=logits), labels).item() == pytest.approx(sum(nll) / 4, rel=1e-6)


def test_validation_stays_target_only(dm_tokenized):
    dataset = load_from_disk(str(dm_tokenized / "tokenize_dataset" / "run" / "dataset"))
    assert weighted_train_split(dataset, 0.0) is dataset and OTHER_WEIGHT not in dataset["train"].column_names
    split = weighted_train_split(load_from_disk(str(dm_tokenized / "tokenize_dataset" / "run" / "dataset")), 0.3)
    assert split["train"][0][OTHER_WEIGHT] == pytest.approx(0.3)
    assert OTHER_WEIGHT not in split["validation"].column_names
    rows = [split["validation"][i] for i in range(min(2, len(split["validation"])))]
    batch = PadCollator(pad_token_id=0, labelled_logits=True)(rows)
    assert LOSS_WEIGHTS not in batch
    assert batch["labels"][0, 1:].tolist() == [t for r in rows for t in r["labels"][1:] if t != IGNORE]


def all_token_copy(dm_tokenized: Path, out: Path) -> Path:
    """The tokenize run with labels on every token of the train split (the benchmark's no-masking recipe)."""
    import shutil

    run = dm_tokenized / "tokenize_dataset" / "run"
    dataset = load_from_disk(str(run / "dataset"))
    dataset["train"] = dataset["train"].map(lambda row: {"labels": row["input_ids"]})
    dataset.save_to_disk(str(out / "dataset"))
    for name in ("tokenizer", "manifest.json", "stats.json"):
        (shutil.copytree if (run / name).is_dir() else shutil.copy)(run / name, out / name)
    return out


def test_weight_one_trains_as_labels_on_every_token(dm_tokenized, tiny_llama, tmp_path):
    """Through the Trainer (gradient accumulation, its denominator): weight 1 logs the losses of the no-masking
    recipe. The first step's loss (the adapter starts as a no-op, so every run scores the same model on the same
    batch) is the weighted mean, so weight 0.5 lies strictly between target-only (0) and every token (1)."""
    every = all_token_copy(dm_tokenized, tmp_path / "all_token_data")
    common = (
        "trainer.max_steps=2",
        "trainer.batch_size=2",
        "trainer.gradient_accumulation_steps=2",
        "method.dropout=0",
        "min_target_turns=0",
    )
    curves = {}
    for name, data, weight in (("every", every, 0.0), ("one", None, 1.0), ("half", None, 0.5), ("zero", None, 0.0)):
        more = [f"trainer.other_turns_weight={weight}", *common] + ([f"input={data}"] if data else [])
        cfg = compose("train", tiny_overrides(dm_tokenized, tiny_llama, *more))
        curves[name] = losses(train(cfg, tmp_path / name, console=quiet()))
    # The same loss up to float32 summation order (a weighted sum over the batch vs a plain mean; torch's reductions
    # also change order with the thread count): measured 4e-5 apart on a busy machine, while weight 0 and 1 differ
    # in the second digit.
    assert len(curves["one"]) == 2 and curves["one"] == pytest.approx(curves["every"], rel=2e-4)
    low, high = sorted((curves["zero"][0], curves["one"][0]))
    assert low < curves["half"][0] < high, curves


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.other_turns_weight=1.5"], "trainer.other_turns_weight: must be in [0, 1], not 1.5"),
        (["trainer.other_turns_weight=-0.1"], "trainer.other_turns_weight: must be in [0, 1], not -0.1"),
        (
            ["trainer.other_turns_weight=0.3", "trainer.labelled_logits=false"],
            "trainer.other_turns_weight: needs trainer.labelled_logits=true",
        ),
    ],
)
def test_bad_weights_are_one_line_errors(overrides, message):
    cfg = compose("train", overrides)
    with pytest.raises(ChatcloneError) as error:
        cfg.check()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
