"""What a newcomer types and reads: DiscordChatExporter file names and ordinary prompts on the command line as typed
(chatclone.config.commandline), conversations from generate_from_prompt that show every turn honestly, and the hints
where a user gets stuck (a display-name target, an uncached hub model, TXT dates read as UTC, the next command).

The command lines run the real scripts in subprocesses; `--cfg job` checks a parsed value without loading a model.
"""

from __future__ import annotations

import io
import json
import random
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from chatclone import runs
from chatclone.config.commandline import free_text_keys, plain_text_overrides, quote, schema_of
from chatclone.errors import ChatcloneError
from chatclone.generation.session import CUT_MARK, NO_REPLY, next_speaker
from chatclone.stages.generate_from_prompt import generate_from_prompt
from tests.conftest import DM, SHARED, compose, run_script
from tests.test_generation import SMALL, read_jsonl

DCE_JSON = f"{DM}.json"  # "Direct Messages - Orrin [1118608583297251434].json", as DCE names it
PROMPTS = ["hey, you up?", "what's up", "are you free? (maybe)", 'she said "no" \\o/', "true", "[not a list]"]


def job_config(name: str, *args: str) -> dict:
    """The config a script would run with (`--cfg job`: composed, nothing loaded)."""
    result = run_script(name, *args, "--cfg", "job")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def next_commands(output: str) -> list[list[str]]:
    """The argv of each command on the `next:` line a stage printed."""
    [line] = [line for line in output.splitlines() if line.startswith("next: ")]
    commands = line.removeprefix("next: ").replace("  (score it)", "").split("  (chat), or ")
    return [shlex.split(command) for command in commands]


# --- item 2: the command line takes what a user types ------------------------------------------------------------


def test_a_dce_file_name_runs_as_typed(tmp_path):
    shutil.copy(SHARED / DCE_JSON, tmp_path / DCE_JSON)
    result = run_script(
        "process_messages",
        f"input={DCE_JSON}",
        "target=tamsin.vale",
        "progress=false",
        f"outputs_root={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "out" / "process_messages").iterdir()
    manifest = runs.read_manifest(run)
    assert manifest["inputs"] == [DCE_JSON] and manifest["summary"]["split"]["train"]["target_turns"] > 0
    assert next_commands(result.stdout + result.stderr) == [
        ["python", "tokenize_dataset.py", f"outputs_root={tmp_path / 'out'}"]
    ]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("name", ["inference", "generate_from_prompt"])
def test_prompts_are_read_as_typed(name, prompt):
    assert job_config(name, "mode=prompt" if name == "inference" else "turns=2", f"prompt={prompt}")["prompt"] == prompt


@pytest.mark.parametrize(
    "args, key, value",
    [
        (["input=[a,b]"], "input", ["a", "b"]),  # input='[a,b]' in the shell: a list
        ([f"input=[{SHARED / DCE_JSON},b]"], "input", [str(SHARED / DCE_JSON), "b"]),  # a DCE name in a list
        (["input=null"], "input", None),
        (["target=name#1234"], "target", "name#1234"),
        (["target=null"], "target", None),
        (["reading.timezone=America/New_York"], "reading", {"timezone": "America/New_York"}),
    ],
)
def test_process_messages_keys(args, key, value):
    got = job_config("process_messages", *args)[key]
    assert (got if key != "reading" else {"timezone": got["timezone"]}) == value


@pytest.mark.parametrize(
    "args, key, value",
    [
        (["prompt='hey, you up?'"], "prompt", "hey, you up?"),  # already quoted: Hydra's meaning
        (["prompt=null"], "prompt", "null"),  # a str key that cannot be null: the word
        (["speakers=[Orrin,Pippa]"], "speakers", ["Orrin", "Pippa"]),
        (["speakers=Orrin,Pippa"], "speakers", ["Orrin", "Pippa"]),  # a list key's commas separate items
        (["speakers=Orrin"], "speakers", ["Orrin"]),
        (["sampling=greedy", "prompt=it's me"], "prompt", "it's me"),  # a group choice stays a group choice
    ],
)
def test_generate_from_prompt_keys(args, key, value):
    assert job_config("generate_from_prompt", *args)[key] == value


def test_tokenize_dataset_free_text_keys():
    cfg = job_config(
        "tokenize_dataset",
        "formatting.system_prompt=You are {target}, texting friends.",
        "model.end_of_turn=<|eot_id|>",
    )
    assert cfg["formatting"]["system_prompt"] == "You are {target}, texting friends."
    assert cfg["model"]["end_of_turn"] == "<|eot_id|>"


@pytest.mark.slow
def test_multirun_sweeps_over_a_free_text_key(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "process_messages",
        "-m",
        f"input={SHARED / DCE_JSON}",
        "target=tamsin.vale,orrin.byrd",
        "progress=false",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr
    targets = {runs.read_manifest(sweep / job)["summary"]["target"]["query"] for job in ("0", "1")}
    assert targets == {"tamsin.vale", "orrin.byrd"}


def test_rewriting_keeps_hydra_syntax():
    keys = free_text_keys(schema_of("generate_from_prompt"))
    assert keys["prompt"] == "required text" and keys["speakers"] == "list" and "sampling" not in keys
    assert job_config("inference", "prompt=null")["prompt"] is None  # an Optional[str] key: null is null
    assert "preset" not in free_text_keys(schema_of("train")), "a config group is never quoted"
    same = [
        ["-m", "prompt=a,b"],
        ["-m", "prompt=choice(a,b)"],
        ["prompt='a, b'"],
        ["prompt=${oc.env:HOME}"],
        ["speakers=[a,b]"],
        ["sampling=greedy", "seed=3"],
        ["--cfg", "job"],
    ]
    for args in same:
        assert plain_text_overrides(args, keys) == args
    assert plain_text_overrides(["-m", "prompt=what's up,hey"], keys) == ["-m", "prompt='what\\'s up','hey'"]


def test_quoting_round_trips_through_hydras_parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, rng = OverridesParser.create(), random.Random(0)
    texts = ["", "\\", "a\\", "it's", "\\'", "C:\\dir\\", "x'\\'y"]
    texts += ["".join(rng.choice("ab '\"\\,[](){}=$?#~") for _ in range(rng.randint(0, 10))) for _ in range(500)]
    for text in texts:
        assert parser.parse_override(f"prompt={quote(text)}").value() == text, text


@pytest.mark.parametrize(
    "args, shown",
    [
        (["sampling.temperature=0.3,0.7"], "needs -m (multirun)"),
        (["hydra.run.dir=runs/(1)"], """quote it: hydra.run.dir="'runs/(1)'\""""),
    ],
)
def test_an_override_hydra_cannot_read_is_one_line(args, shown):
    result = run_script("inference", *args)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and shown in result.stderr


def test_the_quoted_form_shown_works():
    with pytest.raises(ChatcloneError) as info:
        plain_text_overrides(["hydra.run.dir=runs/(1)"], {})
    suggestion = shlex.split(str(info.value).rsplit("quote it: ", 1)[1])
    assert plain_text_overrides(suggestion, {}) == ["hydra.run.dir='runs/(1)'"]


# --- item 7: generate_from_prompt shows every turn honestly --------------------------------------------------------


class EveryTurn:
    """A logits processor forcing `ids` from the first generated token of every generate call."""

    def __init__(self, ids: list[int]):
        self.ids, self.start, self.seen = ids, None, None

    def __call__(self, input_ids, scores):
        import torch

        if self.seen is None or input_ids.shape[1] != self.seen + 1:  # a new generate call
            self.start = input_ids.shape[1]
        self.seen = input_ids.shape[1]
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.ids[min(input_ids.shape[1] - self.start, len(self.ids) - 1)]] = 0
        return forced


def forced(root: Path, text: str, end: bool) -> EveryTurn:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "train" / "run" / "final")
    return EveryTurn(tokenizer(text, add_special_tokens=False)["input_ids"] + ([2] if end else []))


def grow(root: Path, tmp: Path, overrides: list[str], processor: EveryTurn) -> tuple[dict, str, str]:
    cfg = compose(
        "generate_from_prompt",
        [f"outputs_root={root}", *SMALL, "prompt=Pippa: pub quiz tonight?", "speakers=[Orrin,Pippa]", *overrides],
    )
    out, notes = io.StringIO(), io.StringIO()
    summary = generate_from_prompt(
        cfg,
        tmp / "run",
        stdin=io.StringIO(),
        stdout=out,
        stderr=io.StringIO(),
        console=Console(file=notes, width=300),
        logits_processor=[processor],
    )
    return summary, out.getvalue(), notes.getvalue()


def shown_turns(out: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in out.splitlines() if not line.startswith(" ")]


def test_no_empty_turn_and_nobody_twice_in_a_row(clone_root, tmp_path):
    # every draw writes `Orrin: hi`: Orrin's turns say "hi", everyone else's turns are cut to nothing
    summary, out, notes = grow(
        clone_root, tmp_path, ["turns=6", "sampling.max_new_tokens=12"], forced(clone_root, "Orrin: hi", end=True)
    )
    turns = shown_turns(out)
    assert len(turns) == 1 + 6 and all(text for _, text in turns), out
    assert all(a[0] != b[0] for a, b in zip(turns, turns[1:])), out
    assert {text for name, text in turns[1:]} <= {"hi", NO_REPLY} and ("Tamsin", NO_REPLY) in turns, out
    no_reply = sum(text == NO_REPLY for _, text in turns)
    assert (summary["replies"], summary["empty_replies"]) == (6, no_reply)
    rows = read_jsonl(tmp_path / "run" / "generations.jsonl")
    assert summary["draws"] == len(rows) == 6 + summary["redrawn"] and summary["redrawn"] == 2 * no_reply
    assert [r["attempt"] for r in rows if r["shown"] and not r["text"]] == [3] * no_reply  # reply_attempts=3
    assert (
        f"6 replies: {6 - no_reply} ended their turn, {no_reply} (no reply); {2 * no_reply} empty draws "
        "drawn again" in notes
    )
    text = (tmp_path / "run" / "conversation.txt").read_text(encoding="utf-8")
    assert text.count(f": {NO_REPLY}  [cut before Orrin's line, 3 draws]") == no_reply


def test_reply_attempts_is_configured(clone_root, tmp_path):
    summary, out, _ = grow(
        clone_root, tmp_path, ["turns=1", "reply_attempts=1"], forced(clone_root, "Orrin: hi", end=True)
    )
    assert shown_turns(out)[1] == ("Tamsin", NO_REPLY) and (summary["draws"], summary["redrawn"]) == (1, 0)
    with pytest.raises(ChatcloneError, match="reply_attempts=0"):
        compose("generate_from_prompt", ["prompt=hi", "reply_attempts=0"]).check()


def test_a_reply_cut_at_max_new_tokens_is_marked(clone_root, tmp_path):
    summary, out, notes = grow(
        clone_root,
        tmp_path,
        ["turns=3"],  # max_new_tokens=6 (SMALL)
        forced(clone_root, " one two three four five six seven eight", end=False),
    )
    turns = shown_turns(out)[1:]
    assert len(turns) == 3 and all(text.endswith(CUT_MARK) for _, text in turns), out
    assert summary["truncated"] == summary["replies"] == 3
    assert "3 replies: 0 ended their turn, 3 cut at sampling.max_new_tokens (shown with …)" in notes
    transcript = [t for t in read_jsonl(tmp_path / "run" / "conversation.jsonl") if t["by"] == "model"]
    assert all(t["stopped"] == "max_new_tokens" and not t["text"].endswith(CUT_MARK) for t in transcript)
    assert (tmp_path / "run" / "conversation.txt").read_text(encoding="utf-8").count(f"{CUT_MARK}\n") == 3


def test_same_speaker_twice_only_when_allowed():
    rng = random.Random(0)
    for last in ("Tamsin", "Orrin", None):
        drawn = {next_speaker(last, "Tamsin", ["Orrin", "Pippa"], rng) for _ in range(200)}
        assert last not in drawn and drawn == ({"Tamsin"} if last == "Orrin" else {"Orrin", "Pippa"})
    drawn = {next_speaker("Orrin", "Tamsin", ["Orrin", "Pippa"], rng, allow_same=True) for _ in range(200)}
    assert drawn == {"Tamsin", "Orrin"}
    assert compose("generate_from_prompt", ["allow_same_speaker=true"]).allow_same_speaker is True


def test_inference_help_says_a_piped_chat_is_echoed():
    result = run_script("inference", "--help")
    assert result.returncode == 0 and "Piped in, stdout is the whole conversation" in result.stdout


# --- item 8: hints where a user is stuck --------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["Tamsin", "tamsin", "tamsin.val"])
def test_a_display_name_target_says_did_you_mean(tmp_path, target):
    result = run_script(
        "process_messages",
        f"input={SHARED / DCE_JSON}",
        f"target={target}",
        "progress=false",
        f"outputs_root={tmp_path}",
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Did you mean target=tamsin.vale (display name Tamsin)?" in result.stderr


def test_a_target_nobody_resembles_gets_no_guess(tmp_path):
    result = run_script(
        "process_messages", f"input={SHARED / DCE_JSON}", "target=zebra", "progress=false", f"outputs_root={tmp_path}"
    )
    assert result.returncode == 2 and "Did you mean" not in result.stderr and "Top authors" in result.stderr


def test_help_shows_no_special_looking_target():
    result = run_script("process_messages", "--help")
    usage = result.stdout.split("== Configuration groups")[0]
    assert "target=me" not in result.stdout and f'input="{DCE_JSON}"' in usage and "no special values" in usage


@pytest.mark.parametrize("timezone, warned", [(None, True), ("UTC", False), ("Europe/Berlin", False)])
def test_txt_dates_read_as_utc_are_said_once(tmp_path, timezone, warned):
    exports = tmp_path / "exports"
    exports.mkdir()
    for name in (f"{DM}.txt", "Lantern Hollow - Text Channels - general [888880580528273654].json"):
        shutil.copy(SHARED / name, exports / name)
    shutil.copy(SHARED / "windows-crlf" / f"{DM}.txt", exports / "Direct Messages - Orrin [1].txt")
    result = run_script(
        "process_messages",
        f"input={exports}",
        "target=tamsin.vale",
        "progress=false",
        f"outputs_root={tmp_path / 'out'}",
        *([f"reading.timezone={timezone}"] if timezone else []),
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    [run] = (tmp_path / "out" / "process_messages").iterdir()
    warnings = [w for w in json.loads((run / "stats.json").read_text())["warnings"] if "UTC offset" in w]
    assert len(warnings) == output.count("UTC offset") == int(warned), output
    if warned:
        assert "2 file(s)" in warnings[0] and f"{DM}.txt" in warnings[0] and "[1].txt" in warnings[0]
        assert "reading.timezone=Europe/Berlin" in warnings[0] and ".json" not in warnings[0]


def test_an_uncached_hub_model_prints_the_download_command(tmp_path):
    shutil.copy(SHARED / DCE_JSON, tmp_path / DCE_JSON)
    assert (
        run_script(
            "process_messages",
            f"input={DCE_JSON}",
            "target=tamsin.vale",
            "progress=false",
            f"outputs_root={tmp_path}",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    empty = tmp_path / "hf"
    result = run_script(
        "tokenize_dataset",
        "model=gpt2",
        f"outputs_root={tmp_path}",
        cwd=tmp_path,
        env={"HF_HOME": str(empty), "HF_HUB_CACHE": str(empty / "hub"), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "`hf download openai-community/gpt2 --local-dir models/gpt2`" in result.stderr
    assert "`huggingface-cli download openai-community/gpt2 --local-dir models/gpt2`" in result.stderr
    assert "model.name_or_path=models/gpt2" in result.stderr


def test_each_stage_prints_the_next_command_and_it_runs(tmp_path, tiny_llama, embedded_dir, cache_root):
    """process_messages -> tokenize_dataset -> train -> inference, each run with the command the last one printed
    (plus the tiny model and a small budget): the whole walk a newcomer takes."""
    env = {"CHATCLONE_CACHE": str(cache_root)}
    shutil.copy(SHARED / DCE_JSON, tmp_path / DCE_JSON)
    out = tmp_path / "outputs"

    def step(name: str, *args: str, timeout: float = 300) -> list[list[str]]:
        """The commands on the `next:` line of `name`.py, run from tmp_path, which must succeed."""
        result = run_script(name, *args, cwd=tmp_path, env=env, timeout=timeout)
        assert result.returncode == 0, result.stderr
        return next_commands(result.stdout + result.stderr)

    [command] = step(
        "process_messages",
        f"input={DCE_JSON}",
        "target=tamsin.vale",
        "progress=false",
        f"outputs_root={out}",
        timeout=120,
    )
    assert command[:2] == ["python", "tokenize_dataset.py"]
    [command] = step(
        "tokenize_dataset", *command[2:], f"model.name_or_path={tiny_llama}", "progress=false", "num_proc=1"
    )
    assert command == ["python", "train.py", f"outputs_root={out}", f"model.name_or_path={tiny_llama}"]
    chat, evaluate = step(
        "train", *command[2:], "trainer.max_steps=2", "wandb.mode=disabled", "trainer.save_strategy=no"
    )
    assert chat == ["python", "inference.py", f"outputs_root={out}"]
    assert evaluate == ["python", "evaluate_clone.py", f"outputs_root={out}"]
    result = run_script(
        "inference",
        *chat[2:],
        "mode=prompt",
        "prompt=what's up, free later?",
        "sampling.max_new_tokens=4",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.startswith("Tamsin: "), result.stderr
    [row] = read_jsonl(next((out / "inference").iterdir()) / "generations.jsonl")
    assert row["tokens"] <= 4
