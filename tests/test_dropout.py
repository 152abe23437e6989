"""FastDropout (method.fast_dropout): nn.Dropout's distribution, scaling, gradients and seeding, on real LoRA models."""

from __future__ import annotations

import pytest
import torch

from chatclone.training.dropout import FastDropout
from chatclone.training.models import build_model
from tests.conftest import compose
from tests.test_train import tiny_overrides
from tests.tiny_models import build_tiny_model


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_drops_each_element_with_probability_p_and_rescales_the_rest(p):
    x = torch.rand(1001, 997) + 1.0  # 998,000 elements, not a multiple of 4, none zero
    out = FastDropout(p).train()(x)
    dropped = out == 0
    # binomial standard deviation of the dropped share is ~2e-4 (p = 0.05) to ~5e-4 (p = 0.3): 5 sigma
    assert abs(dropped.float().mean().item() - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5
    torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - p))
    rows, columns = dropped.float().mean(1), dropped.float().mean(0)  # no structure along either axis
    assert rows.std() < 2 * (p * (1 - p) / 997) ** 0.5 and columns.std() < 2 * (p * (1 - p) / 1001) ** 0.5


def test_masks_are_fresh_each_call_and_follow_torch_seed():
    x = torch.ones(64, 576)
    dropout = FastDropout(0.1).train()
    torch.manual_seed(7)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(7)
    assert torch.equal(dropout(x), first) and not torch.equal(first, second)


def test_gradient_is_the_mask_times_the_scale():
    x = torch.randn(33, 50, requires_grad=True)
    out = FastDropout(0.2).train()(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() / 0.8)


def test_eval_mode_and_p_zero_are_the_identity_and_bad_p_is_refused():
    x = torch.randn(8, 8)
    assert torch.equal(FastDropout(0.5).eval()(x), x) and torch.equal(FastDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FastDropout(1.0)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_lora_models_get_fast_dropout_unless_switched_off(dm_tokenized, tiny_llama, method):
    for fast, kind in [("true", FastDropout), ("false", torch.nn.Dropout)]:
        cfg = compose(
            "train", tiny_overrides(dm_tokenized, tiny_llama, f"method={method}", f"method.fast_dropout={fast}")
        )
        model = build_model(cfg, str(tiny_llama), 100)
        dropouts = [d for m in model.modules() if hasattr(m, "lora_dropout") for d in m.lora_dropout.values()]
        assert len(dropouts) == 7 * model.config.num_hidden_layers  # the 7 Llama projections of every layer
        assert all(type(d) is kind and d.p == 0.05 for d in dropouts)


def test_full_training_swaps_the_models_own_dropout_layers(dm_tokenized, embedded_dir, tmp_path):
    """GPT-2 has dropout layers of its own (embeddings, attention, residuals): method=full swaps them all, and the
    attention still reads its dropout probability from the swapped layer."""
    gpt2 = build_tiny_model("gpt2", tmp_path / "gpt2", embedded_dir)
    kinds = {}
    for fast in ("true", "false"):
        cfg = compose(
            "train", tiny_overrides(dm_tokenized, gpt2, "model=gpt2", "method=full", f"method.fast_dropout={fast}")
        )
        model = build_model(cfg, str(gpt2), 100)
        kinds[fast] = [type(m).__name__ for m in model.modules() if getattr(m, "p", 0) > 0]
        ids = torch.arange(1, 41).reshape(2, 20)
        assert torch.isfinite(model.train()(input_ids=ids, labels=ids).loss)
    assert len(kinds["true"]) == len(kinds["false"]) > 3 * model.config.n_layer
    assert set(kinds["true"]) == {"FastDropout"} and set(kinds["false"]) == {"Dropout"}


def test_a_lora_step_gets_the_same_gradients_as_with_nn_dropout_when_nothing_is_dropped(dm_tokenized, tiny_llama):
    """The swap changes only where the masks come from: with p tiny enough that nothing is dropped (threshold
    0 of 65536), both models compute the same thing."""
    grads = []
    for fast in ("true", "false"):
        cfg = compose(
            "train", tiny_overrides(dm_tokenized, tiny_llama, "method.dropout=1e-7", f"method.fast_dropout={fast}")
        )
        torch.manual_seed(0)
        model = build_model(cfg, str(tiny_llama), 100).train()
        for name, param in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.02)  # B = 0 at init would hide the dropout entirely
        ids = torch.arange(1, 41).reshape(2, 20)
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.fast_dropout=maybe", "'maybe' is not a valid bool"),
        ("method.fast_dropot=false", "Key 'fast_dropot' not in 'MethodConfig'"),
    ],
)
def test_bad_fast_dropout_overrides_name_the_key(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as info:
        compose("train", [override])
    assert message in str(info.value.__cause__)
