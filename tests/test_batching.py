"""Labelled logits give the same loss and gradients as the full computation, for every architecture and through
train(); padding is by position, never by token id."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import load_from_disk

from chatclone.stages.train import train
from chatclone.training.batching import IGNORE, PadCollator, flat_hidden_states, labelled_loss
from tests.conftest import compose, quiet
from tests.test_train import losses, tiny_overrides
from tests.tiny_models import TINY_ARCHS, build_tiny_model


def dm_rows(dm_tokenized: Path, n: int = 4) -> list[dict]:
    dataset = load_from_disk(str(dm_tokenized / "tokenize_dataset" / "run" / "dataset"))["train"]
    rows = [dataset[i] for i in range(n)]
    assert len({len(r["input_ids"]) for r in rows}) > 1, "the test needs sequences of different lengths"
    return rows


def test_padding_is_by_position_even_when_pad_is_eos(dm_tokenized):
    rows = dm_rows(dm_tokenized, 3)
    end_of_turn = [t for t in rows[0]["labels"] if t != IGNORE][-1]  # the target's turn ends on it, labelled
    batch = PadCollator(pad_token_id=end_of_turn)(rows)
    for row, r in enumerate(rows):
        n = len(r["input_ids"])
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        assert batch["labels"][row, :n].tolist() == r["labels"] and (batch["labels"][row, n:] == IGNORE).all()
        assert end_of_turn in batch["labels"][row, :n].tolist()


def test_labelled_logits_layout(dm_tokenized):
    rows = dm_rows(dm_tokenized, 3)
    batch = PadCollator(pad_token_id=0, labelled_logits=True)(rows)
    width = batch["input_ids"].shape[1]
    expected = [t for r in rows for t in r["labels"][1:] if t != IGNORE]
    assert batch["labels"][0, 0] == IGNORE and batch["labels"][0, 1:].tolist() == expected
    keep = batch["logits_to_keep"]
    assert len(keep) == len(expected) > 0
    assert all(int(k) % width < len(rows[int(k) // width]["input_ids"]) - 1 for k in keep)  # never padding
    assert batch["input_ids"].flatten()[keep + 1].tolist() == expected  # position j predicts token j + 1


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_labelled_logits_equal_the_full_loss_and_gradients(arch, dm_tokenized, embedded_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        build_tiny_model(arch, tmp_path / arch, embedded_dir), dtype=torch.float32
    )
    model.config.use_cache = False
    rows = dm_rows(dm_tokenized)

    full = model(**PadCollator(model.config.pad_token_id)(rows)).loss
    full.backward()
    full_grad = model.get_input_embeddings().weight.grad.clone()
    model.zero_grad()

    batch = PadCollator(model.config.pad_token_id, labelled_logits=True)(rows)
    labels = batch.pop("labels")
    with flat_hidden_states(model):
        outputs = model(**batch)
    assert outputs.logits.shape == (1, len(batch["logits_to_keep"]), model.config.vocab_size)
    loss = labelled_loss(outputs, labels)
    loss.backward()
    assert torch.allclose(loss, full, rtol=1e-4), (arch, loss.item(), full.item())
    assert torch.allclose(model.get_input_embeddings().weight.grad, full_grad, atol=1e-6, rtol=1e-3)
    assert model(**PadCollator(model.config.pad_token_id)(rows)).logits.ndim == 3  # the hook is gone again


def test_train_loss_is_the_same_with_labelled_logits_or_without(dm_tokenized, tiny_llama, tmp_path):
    """Through the Trainer (gradient accumulation, its count of labelled tokens): the same logged losses."""
    curves = {}
    for labelled in ("true", "false"):
        cfg = compose(
            "train",
            tiny_overrides(
                dm_tokenized,
                tiny_llama,
                f"trainer.labelled_logits={labelled}",
                "trainer.max_steps=2",
                "trainer.batch_size=2",
                "trainer.gradient_accumulation_steps=2",
                "method.dropout=0",
            ),
        )
        curves[labelled] = losses(train(cfg, tmp_path / labelled, console=quiet()))
    assert len(curves["true"]) == 2 and curves["true"] == pytest.approx(curves["false"], rel=1e-3)
