"""export_model's template check on who speaks: the target under a server nickname is still the target, speakers
the export does not know are passed over (the templates cannot name them), a template that renders a turn
differently from training refuses the export, and an export whose check compared nothing says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatclone.errors import ChatcloneError
from chatclone.export.chat_format import check_templates, go_template, jinja_template, turn_pieces
from chatclone.generation.clone import locate
from chatclone.generation.prompt import PromptBuilder
from chatclone.modeling import load_tokenizer
from chatclone.stages.export_model import UNCHECKED, export_model
from chatclone.stages.process_messages import process_messages
from chatclone.stages.tokenize_dataset import tokenize_dataset
from tests.conftest import ROOT, compose, make_config, quiet, train_tiny_run

USER = "Orrin"


@pytest.fixture(scope="module")
def templates(clone_root: Path) -> tuple[str, str, PromptBuilder, list[str]]:
    """The tiny clone's Ollama and Jinja templates, as export_model derives them (user_name Orrin, its partner)."""
    spec = locate(compose("inference", [f"outputs_root={clone_root}"]))
    builder = PromptBuilder(load_tokenizer(spec.data_dir / "tokenizer"), spec.format)
    names, pieces = [USER, *spec.partners], turn_pieces(builder)
    system = spec.format.style.system_prompt
    return go_template(pieces, names, USER), jinja_template(pieces, names, USER, system), builder, names


def turn(role: str, name: str, content: str) -> dict:
    return {"role": role, "name": name, "content": content}


def test_the_target_under_a_server_nickname_is_checked(templates):
    go, jinja, builder, names = templates
    assert builder.format.target == "Tamsin"
    chat = [
        turn("user", USER, "you up?"),
        turn("assistant", "tam", "yes"),  # the target's nickname in a server channel
        turn("user", USER, "ridge loop on saturday?"),
        turn("assistant", "tam", "always"),
    ]
    assert check_templates(go, jinja, builder, [chat], USER, names) == 2


def test_a_speaker_the_export_does_not_know_is_passed_over(templates):
    go, jinja, builder, names = templates
    assert "Marlow" not in names
    chat = [
        turn("user", USER, "you up?"),
        turn("assistant", "Tamsin", "yes"),
        turn("user", "Marlow", "hi! Tamsin sent me the invite"),  # the template would write `Orrin: Marlow: hi!`
        turn("assistant", "Tamsin", "MARLOW you made it"),
    ]
    assert check_templates(go, jinja, builder, [chat], USER, names) == 1


def test_a_template_that_differs_from_training_refuses_naming_the_turn(templates):
    go, jinja, builder, names = templates
    chat = [turn("user", USER, "you up?"), turn("assistant", "Tamsin", "yes")]
    broken = go.replace("<|im_start|>assistant", "<|im_start|>bot")
    assert broken != go
    with pytest.raises(ChatcloneError, match=r"the Ollama template renders validation conversation 1, turn 2 "):
        check_templates(broken, jinja, builder, [chat], USER, names)


def test_an_export_whose_check_compared_nothing_says_so(tiny_llama: Path, tmp_path: Path):
    # The bundled sample's newest conversations (its validation split) are the server channel's, whose speakers
    # all but the target are not in the training split (the DM with Orrin).
    root = tmp_path / "outputs"
    process_messages(
        make_config([ROOT / "examples" / "sample_exports"]), root / "process_messages" / "run", console=quiet()
    )
    tokenizing = compose(
        "tokenize_dataset",
        [
            f"input={root / 'process_messages' / 'run'}",
            "progress=false",
            "num_proc=1",
            f"model.name_or_path={tiny_llama}",
        ],
    )
    tokenize_dataset(tokenizing, root / "tokenize_dataset" / "run", console=quiet())
    train_tiny_run(root, root / "tokenize_dataset" / "run", tiny_llama, "eval.sample_contexts=0")
    console = quiet()
    cfg = compose("export_model", [f"outputs_root={root}", "quantization=F16"])
    info = export_model(cfg, root / "export_model" / "run", console=console)
    assert info["template_checked_turns"] == 0
    shown = console.file.getvalue()
    assert UNCHECKED in " ".join(shown.split()) and "template checked on 0 turns" in shown
