"""chatclone.formatting: rendering through chat templates, labels from offsets, windows, template errors.

Uses the embedded SmolLM2 tokenizer; group tokenizers (`group_tokenizer`) add the special tokens a real Phi-3,
Mistral or GPT-2 tokenizer has, and drop the template where the group's fallback template is meant to apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from chatclone.errors import ChatcloneError
from chatclone.formatting import (
    IGNORE,
    ChatEncoder,
    Sequence,
    Style,
    build_units,
    char_spans,
    labels_for_spans,
    window_turns,
)
from chatclone.modeling import EMBEDDED_DIRNAME, MARKER, default_cache_root
from tests.conftest import ROOT

SYSTEM = "You are Tamsin. Reply exactly the way Tamsin texts."
# transformers' own assistant mask for ChatML, via {% generation %} (the notes' verified template).
GENERATION_CHATML = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful "
    "AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}"
    "{% if m['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}{{ m['content'] + "
    "'<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# A group chat with what breaks naive span searches: a user saying exactly what the target says next, a user
# saying "assistant", bursts from one side, emoji and stray whitespace.
CHAT = [
    {"role": "user", "name": "Pippa", "content": "lol"},
    {"role": "assistant", "name": "tam", "content": "lol"},
    {"role": "user", "name": "ezraloom", "content": "assistant"},
    {"role": "user", "name": "Pippa", "content": "who's coming thursday? 🎲"},
    {"role": "assistant", "name": "tam", "content": "  me!! i need basil 🌿\n"},
    {"role": "assistant", "name": "tam", "content": "and soup"},
    {"role": "user", "name": "Marlow", "content": "i can drive"},
    {"role": "assistant", "name": "tam", "content": "deal 🍅"},
]


def group_tokenizer(base_dir: Path, group: str) -> Any:
    """The embedded tokenizer made to look like `group`'s own (special tokens, eos/pad, template or none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    if group == "gpt2":  # GPT-2's only special token, used as eos and (as setups do) pad
        tok.eos_token = tok.pad_token = "<|endoftext|>"
    elif group == "phi3":
        tok.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]})
        tok.eos_token = tok.pad_token = "<|endoftext|>"
        tok.chat_template = None
    elif group == "mistral":
        tok.add_special_tokens(
            {"bos_token": "<s>", "eos_token": "</s>", "additional_special_tokens": ["[INST]", "[/INST]"]}
        )
        tok.pad_token = None
        tok.chat_template = None
    return tok


def group_config(group: str) -> Any:
    return OmegaConf.load(ROOT / "conf" / "model" / f"{group}.yaml")


def group_encoder(tok: Any, group: str, max_length: int = 1024, **style: Any) -> ChatEncoder:
    cfg = group_config(group)
    template = cfg.chat_template or tok.chat_template or cfg.fallback_chat_template
    style = {
        "system_prompt": SYSTEM,
        "system_role": cfg.system_role,
        "alternating_roles": cfg.alternating_roles,
        **style,
    }
    return ChatEncoder(tok, template, cfg.end_of_turn, Style(**style), max_length, where=f"model={group}")


def labelled_runs(tok: Any, sequence: Sequence | list[int]) -> list[str]:
    """Decoded runs of consecutive labelled tokens."""
    runs, current = [], []
    for label in (sequence if isinstance(sequence, list) else sequence.labels) + [IGNORE]:
        if label != IGNORE:
            current.append(label)
        elif current:
            runs.append(tok.decode(current))
            current = []
    return runs


def expected_runs(messages: list[dict], end_of_turn: str, merge: bool) -> list[str]:
    """What must be labelled, worked out independently: each trained target turn (a run of them when the template
    merges same-role turns) plus the end-of-turn token."""
    runs, group = [], []
    for i, m in enumerate(messages + [{"role": "end"}]):
        if m["role"] == "assistant":
            group.append(m)
            if merge and messages[i + 1 : i + 2] and messages[i + 1]["role"] == "assistant":
                continue
        trained = [g["content"].strip() for g in group if g.get("train", True)]
        if trained:
            runs.append("\n".join(trained) + end_of_turn)
        group = []
    return runs


def assert_runs(actual: list[str], expected: list[str]) -> None:
    """Equal, allowing a token to carry one character of template text before a turn (Mistral's `[/INST] `)."""
    assert len(actual) == len(expected), (actual, expected)
    for got, want in zip(actual, expected):
        assert got == want or (got[:1] in " \n" and got[1:] == want), (got, want)


@pytest.fixture(scope="session")
def tokenizer_dir(request: pytest.FixtureRequest) -> Path:
    """The converted embedded model: the machine's cache when it holds one (instant), else the session's
    `embedded_dir` (converted once per session, 30-60 s)."""
    cached = default_cache_root() / EMBEDDED_DIRNAME
    return cached if (cached / MARKER).is_file() else request.getfixturevalue("embedded_dir")


@pytest.fixture(scope="module")
def tokenizers(tokenizer_dir: Path) -> dict[str, Any]:
    return {group: group_tokenizer(tokenizer_dir, group) for group in ("smollm2", "gpt2", "phi3", "mistral")}


def test_chatml_labels_equal_transformers_generation_mask(tokenizers):
    tok = tokenizers["smollm2"]
    encoder = group_encoder(tok, "smollm2")
    [sequence] = encoder.encode(CHAT).sequences
    units = build_units(CHAT, encoder.style)
    turns = window_turns(units, 0, len(units) - 1, 0, encoder.style)
    reference = tok.apply_chat_template(
        [{"role": t.role, "content": t.content} for t in turns],
        chat_template=GENERATION_CHATML,
        return_assistant_tokens_mask=True,
        return_dict=True,
    )
    assert sequence.input_ids == reference["input_ids"]
    assert [int(label != IGNORE) for label in sequence.labels] == reference["assistant_masks"]
    assert labelled_runs(tok, sequence) == [
        "lol<|im_end|>",
        "me!! i need basil 🌿<|im_end|>",
        "and soup<|im_end|>",
        "deal 🍅<|im_end|>",
    ]


@pytest.mark.parametrize("group", ["smollm2", "gpt2", "phi3", "mistral"])
def test_each_group_labels_exactly_the_target_turns(tokenizers, group):
    tok, cfg = tokenizers[group], group_config(group)
    [sequence] = group_encoder(tok, group).encode(CHAT).sequences
    assert_runs(labelled_runs(tok, sequence), expected_runs(CHAT, cfg.end_of_turn, cfg.alternating_roles))
    assert sequence.target_turns == 4 and sequence.length == len(sequence.labels)


def test_pad_equal_to_eos_keeps_every_end_of_turn_labelled(tokenizers):
    for group, end in (("smollm2", "<|im_end|>"), ("gpt2", "<|endoftext|>")):
        tok = tokenizers[group]
        assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids(end)
        [sequence] = group_encoder(tok, group).encode(CHAT).sequences
        trained_ends = [label for label in sequence.labels if label == tok.eos_token_id]
        assert len(trained_ends) == 4  # one per target turn; the other turns' end tokens stay unlabelled
        naive = [i if i != tok.pad_token_id else IGNORE for i in sequence.input_ids]
        assert tok.eos_token_id not in naive  # what masking by pad id would have done


def test_context_only_target_turns_are_not_labelled(tokenizers):
    tok = tokenizers["smollm2"]
    chat = [dict(CHAT[1], content="already trained", train=False)] + CHAT[2:]
    [sequence] = group_encoder(tok, "smollm2").encode(chat).sequences
    assert "already trained" in tok.decode(sequence.input_ids)
    assert labelled_runs(tok, sequence) == expected_runs(chat, "<|im_end|>", merge=False)
    assert all("already" not in run for run in labelled_runs(tok, sequence))
    # merged with a trained burst (alternating templates): only the trained part is labelled
    tok = tokenizers["mistral"]
    chat = CHAT[:4] + [dict(CHAT[4], train=False)] + CHAT[5:]
    [sequence] = group_encoder(tok, "mistral").encode(chat).sequences
    assert_runs(labelled_runs(tok, sequence), ["lol</s>", "and soup</s>", "deal 🍅</s>"])


def test_marker_characters_in_messages_are_dropped(tokenizers):
    tok = tokenizers["smollm2"]
    chat = [{"role": "user", "content": "a\ue002b"}, {"role": "assistant", "content": "\ue000c\ue001d"}]
    [sequence] = group_encoder(tok, "smollm2").encode(chat).sequences
    assert labelled_runs(tok, sequence) == ["cd<|im_end|>"]


def test_speaker_names_and_system_prompt(tokenizers):
    tok = tokenizers["smollm2"]
    text = tok.decode(group_encoder(tok, "smollm2").encode(CHAT).sequences[0].input_ids)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nPippa: lol<|im_end|>")
    assert "ezraloom: assistant" in text and "tam:" not in text  # the target's own turns carry no name
    plain = tok.decode(group_encoder(tok, "smollm2", speaker_names=False).encode(CHAT).sequences[0].input_ids)
    assert "<|im_start|>user\nlol<|im_end|>" in plain and "Pippa" not in plain


def test_mistral_merges_same_role_turns_and_folds_the_system_prompt(tokenizers):
    tok = tokenizers["mistral"]
    [sequence] = group_encoder(tok, "mistral").encode(CHAT[2:]).sequences
    assert tok.decode(sequence.input_ids) == (
        f"<s>[INST] {SYSTEM}\n\nezraloom: assistant\nPippa: who's coming thursday? 🎲[/INST] me!! i need basil 🌿\n"
        "and soup</s>[INST] Marlow: i can drive[/INST] deal 🍅</s>"
    )
    # a conversation opening with the target gets a user turn carrying the system prompt
    [sequence] = group_encoder(tok, "mistral").encode(CHAT[1:2]).sequences
    assert tok.decode(sequence.input_ids) == f"<s>[INST] {SYSTEM}[/INST] lol</s>"


@pytest.mark.parametrize(
    "style, message",
    [
        ({"alternating_roles": False}, "cannot express a conversation of roles"),
        ({"system_role": True}, "drops the system prompt"),
    ],
)
def test_mistral_template_limits_are_reported(tokenizers, style, message):
    with pytest.raises(ChatcloneError, match=message) as info:
        group_encoder(tokenizers["mistral"], "mistral", **style).encode(CHAT)
    assert "\n" not in str(info.value) and str(info.value).startswith("model=mistral: ")


def test_wrong_end_of_turn_and_rewriting_templates_are_reported(tokenizers):
    tok = tokenizers["phi3"]
    template = group_config("phi3").fallback_chat_template
    wrong = ChatEncoder(tok, template, "<|endoftext|>", Style(), 1024, where="model=phi3")
    with pytest.raises(ChatcloneError, match="does not end assistant turns with model.end_of_turn='<|endoftext|>'"):
        wrong.encode(CHAT)
    upper = template.replace("message['content']", "message['content'] | upper")
    with pytest.raises(ChatcloneError, match="does not render each message once and verbatim"):
        ChatEncoder(tok, upper, "<|end|>", Style(), 1024).encode(CHAT)


@pytest.mark.parametrize("group", ["smollm2", "gpt2", "phi3", "mistral"])
def test_fast_render_matches_apply_chat_template(tokenizers, group):
    group_encoder(tokenizers[group], group).check(CHAT)


def test_templates_that_inspect_message_text_are_refused(tokenizers):
    tok = tokenizers["smollm2"]
    peeking = tok.chat_template.replace(
        "message['content']", "(message['content'] if message['content'][:1] != 'l' else 'L')"
    )
    encoder = ChatEncoder(tok, peeking, "<|im_end|>", Style(), 1024, where="model=custom")
    with pytest.raises(ChatcloneError, match="renders differently once message text is marked"):
        encoder.check(CHAT)


def long_chat(turns: int) -> list[dict]:
    return [
        {
            "role": "user" if i % 3 == 0 else "assistant",
            "name": "Pippa" if i % 3 == 0 else "tam",
            "content": f"message number {i} about the soup and the game on thursday",
        }
        for i in range(turns)
    ]


@pytest.mark.parametrize("group", ["smollm2", "mistral"])
def test_long_conversations_become_windows_ending_on_target_turns(tokenizers, group):
    tok, cfg = tokenizers[group], group_config(group)
    chat = long_chat(30)
    encoded = group_encoder(tok, group, max_length=90).encode(chat)
    assert len(encoded.sequences) > 3 and encoded.skipped_turns == 0
    runs = []
    for k, sequence in enumerate(encoded.sequences):
        assert sequence.length <= 90
        last = max(i for i, label in enumerate(sequence.labels) if label != IGNORE)
        assert sequence.input_ids[last] == tok.convert_tokens_to_ids(cfg.end_of_turn)
        assert tok.decode(sequence.input_ids[last + 1 :]).strip() == ""  # ends on a target turn
        text = tok.decode(sequence.input_ids)
        if k:  # later windows start with context: earlier turns, unlabelled
            first = min(i for i, label in enumerate(sequence.labels) if label != IGNORE)
            assert "message number" in tok.decode(sequence.input_ids[:first])
        assert text.count(SYSTEM) == 1 and ("message number 0 " in text) == (k == 0)
        runs += labelled_runs(tok, sequence)
    assert_runs(runs, expected_runs(chat, cfg.end_of_turn, cfg.alternating_roles))  # each turn trained once
    assert sum(s.target_turns for s in encoded.sequences) == 20


def test_a_turn_too_long_for_max_length_is_skipped_and_counted(tokenizers):
    tok = tokenizers["smollm2"]
    chat = long_chat(6)
    chat[4] = dict(chat[4], content="soup " * 200)
    encoded = group_encoder(tok, "smollm2", max_length=80).encode(chat)
    assert encoded.skipped_turns == 1 and encoded.skipped_tokens > 80
    runs = [run for s in encoded.sequences for run in labelled_runs(tok, s)]
    assert runs == [
        m["content"] + "<|im_end|>" for m in chat if m["role"] == "assistant" and "soup " * 3 not in m["content"]
    ]
    assert all(s.length <= 80 for s in encoded.sequences)


def test_labels_cover_every_token_touching_a_span(tokenizers):
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizers["smollm2"].backend_tokenizer.to_str())
    text = "[/INST] ok  there<|im_end|>\n x"
    encoding = backend.encode(text, add_special_tokens=False)  # '[', '/', 'INST', ']', 'Ġok', 'Ġ', 'Ġthere', ...
    labels = labels_for_spans(encoding, [(text.index("ok"), text.index("\n"))])
    labelled = [token for token, label in zip(encoding.tokens, labels) if label != IGNORE]
    assert labelled == ["Ġok", "Ġ", "Ġthere", "<|im_end|>"]
    assert labels_for_spans(encoding, []) == [IGNORE] * len(encoding.ids)


def test_char_spans_join_content_and_end_of_turn():
    units = build_units(CHAT[:2], Style())
    turns = window_turns(units, 0, 1, 0, Style())
    assert char_spans(turns, [10, 30], "<E>") == [(30, 36)]
