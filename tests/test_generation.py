"""inference.py, generate_from_prompt.py, simulate_conversation.py and the sampling group, on a tiny trained clone.

The clone is the tiny random Llama (tests/tiny_models.py) with a LoRA adapter trained for 2 steps on the bundled
DM: its replies are noise, so stopping is checked both on what it writes and on scripted tokens forced through a
logits processor (an end-of-turn token, another speaker's line).
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.config.generation import SamplingConfig
from chatclone.errors import ChatcloneError
from chatclone.generation.prompt import parse_prompt
from chatclone.generation.stops import SpeakerCut, StreamGate
from chatclone.stages.generate_from_prompt import generate_from_prompt
from chatclone.stages.inference import inference
from chatclone.stages.simulate_conversation import simulate_conversation
from tests.conftest import compose, quiet, run_script

SCRIPTS = ("inference", "generate_from_prompt", "simulate_conversation")
SMALL = ["sampling.max_new_tokens=6", "seed=0"]
TEXT_OF_TURN_MARKERS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def run_stage(stage, script: str, root: Path, tmp: Path, overrides: list[str], stdin: str = "", **kwargs):
    cfg = compose(script, [f"outputs_root={root}", *SMALL, *overrides])
    out, err = io.StringIO(), io.StringIO()
    summary = stage(cfg, tmp / "run", stdin=io.StringIO(stdin), stdout=out, stderr=err, console=quiet(), **kwargs)
    return summary, out.getvalue(), err.getvalue()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_clean_turn(text: str, others: tuple[str, ...] = ("Orrin", "Pippa")) -> None:
    assert not any(marker in text for marker in TEXT_OF_TURN_MARKERS), text
    assert not any(line.lstrip().startswith(f"{name}:") for line in text.split("\n") for name in others), text


class Scripted:
    """A logits processor forcing `ids` one after the other from the first generated token."""

    def __init__(self, ids: list[int]):
        self.ids, self.start = ids, None

    def __call__(self, input_ids, scores):
        import torch

        self.start = input_ids.shape[1] if self.start is None else self.start
        step = input_ids.shape[1] - self.start
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.ids[min(step, len(self.ids) - 1)]] = 0
        return forced


def scripted(root: Path, text: str, end: bool) -> Scripted:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "train" / "run" / "final")
    return Scripted(tokenizer(text, add_special_tokens=False)["input_ids"] + ([2] if end else []))


def forced_inference(
    root: Path, tmp: Path, text: str, overrides: list[str], end: bool = True, stdin: str = ""
) -> tuple[dict, str]:
    """`inference` on the clone under `root`, run in `tmp`/run, its reply forced to `text` (then the end of its turn
    when `end`): the stage's summary and stdout."""
    processor = scripted(root, text, end=end)
    summary, out, _ = run_stage(inference, "inference", root, tmp, overrides, stdin=stdin, logits_processor=[processor])
    return summary, out


# --- config: the sampling group and bad values ------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "option, greedy", [("default", False), ("greedy", True), ("creative", False), ("focused", False)]
)
def test_every_sampling_option_composes(script, option, greedy):
    cfg = compose(script, [f"sampling={option}"])
    assert isinstance(cfg.sampling, SamplingConfig) and cfg.sampling.name == option
    assert cfg.sampling.greedy is greedy and cfg.wandb.mode.value == "disabled"
    cfg.sampling.check()
    if option == "default":
        assert (cfg.sampling.temperature, cfg.sampling.top_p) == (1.0, 1.0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("sampling.temperature=-0.1", "sampling.temperature"),
        ("sampling.top_p=0", "sampling.top_p"),
        ("sampling.top_p=1.5", "sampling.top_p"),
        ("sampling.top_k=-1", "sampling.top_k"),
        ("sampling.repetition_penalty=0", "sampling.repetition_penalty"),
        ("sampling.num_return_sequences=0", "sampling.num_return_sequences"),
        ("sampling.max_new_tokens=0", "sampling.max_new_tokens"),
    ],
)
def test_bad_sampling_values_name_the_override(override, key):
    with pytest.raises(ChatcloneError, match=key.replace(".", r"\.")):
        compose("inference", ["mode=prompt", "prompt=hi", override]).check()


@pytest.mark.parametrize(
    "script, overrides, key",
    [
        (
            "inference",
            ["sampling=greedy", "sampling.num_return_sequences=2", "mode=prompt", "prompt=hi"],
            "sampling.num_return_sequences",
        ),
        (
            "inference",
            ["sampling.temperature=0", "sampling.num_return_sequences=3", "mode=prompt", "prompt=hi"],
            "sampling.num_return_sequences",
        ),
        ("inference", ["sampling.num_return_sequences=2"], "mode=chat"),
        ("inference", ["mode=prompt"], "prompt is empty"),
        ("inference", ["mode=prompt", "prompt=  "], "prompt is empty"),
        ("generate_from_prompt", [], "prompt is empty"),
        ("generate_from_prompt", ["prompt=hi", "turns=0"], "turns"),
        ("generate_from_prompt", ["prompt=hi", "speakers=[a:b]"], "speakers"),
        ("simulate_conversation", ["max_turns=0"], "max_turns"),
        ("inference", ["run=base", "checkpoint=merged"], "checkpoint=merged"),
    ],
)
def test_bad_requests_fail_at_check(script, overrides, key):
    with pytest.raises(ChatcloneError, match=key.replace(".", r"\.")):
        compose(script, overrides).check()


def test_bad_value_from_the_command_line_is_one_line_exit_2(tmp_path):
    result = run_script("inference", f"outputs_root={tmp_path}", "sampling.top_p=1.5")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: sampling.top_p=1.5") and result.stdout == ""


# --- pure pieces: prompt parsing, the speaker safety net ---------------------------------------------------------


def test_parse_prompt_names_speakers():
    got = parse_prompt("Pippa: pub quiz?\nat 8\norrin: in\nsee: you there", ["Tamsin", "Orrin", "Pippa"], "Orrin")
    assert got == [{"name": "Pippa", "content": "pub quiz?\nat 8"}, {"name": "Orrin", "content": "in\nsee: you there"}]
    assert parse_prompt("hey: you", ["Tamsin"], "Orrin") == [{"name": "Orrin", "content": "hey: you"}]


def test_speaker_cut_and_stream_gate():
    cut = SpeakerCut(["Tamsin", "Orrin", "Pippa"], "Tamsin", ["<|im_end|>"])
    assert cut.cut("Tamsin: yes\nwait\nOrrin: no\nmore").text == "yes\nwait"
    assert cut.cut("ok\n  Pippa: hi").speaker == "Pippa" and cut.cut("Orrin: hi").text == ""
    assert cut.cut("Orrin said: hi\nok").speaker is None
    assert cut.cut("Tamsin: hi\n\nTamsin: hey").text == "hi" and cut.cut("hi\nTamsin: hey").speaker == "Tamsin"
    shown: list[str] = []
    gate = StreamGate(cut, shown.append)
    for chunk in ["Tam", "sin: ye", "s\n", "Orr", "in", ": nope"]:
        gate.feed(chunk)
    gate.close()
    assert "".join(shown) == "yes" and gate.stopped
    shown.clear()
    gate = StreamGate(cut, shown.append)
    for chunk in ["hi ", "\nOr", "ange", " juice\n"]:
        gate.feed(chunk)
    gate.close()
    assert "".join(shown) == cut.cut(gate.text).text == "hi \nOrange juice" and not gate.stopped


def test_prompt_renders_like_the_training_template(clone_root):
    from chatclone.generation.clone import load_clone, locate

    cfg = compose("inference", [f"outputs_root={clone_root}"])
    clone = load_clone(locate(cfg), cfg)
    history = [{"role": "user", "name": "Orrin", "content": "hey"}]
    text, _ = clone.prompts.render(history, "Tamsin")
    messages = [
        {"role": "system", "content": clone.spec.format.style.system_prompt},
        {"role": "user", "content": "Orrin: hey"},
    ]
    assert text == clone.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert clone.prompts.render(history, "Pippa")[0].endswith("<|im_end|>\n<|im_start|>user\nPippa:")
    assert clone.stop_ids == [2] and clone.spec.target == "Tamsin" and clone.spec.partners == ["Orrin"]


# --- inference.py --------------------------------------------------------------------------------------------------


def test_chat_in_process_with_stringio(clone_root, tmp_path):
    summary, out, err = run_stage(
        inference, "inference", clone_root, tmp_path, [], stdin="hey\n\n/reset\nsaturday?\n/quit\nnever read\n"
    )
    lines = [line for line in out.split("\n") if line and not line.startswith(" ")]  # piped: your lines are echoed
    assert [line[:8] for line in lines] == ["Orrin: h", "Tamsin: ", "Orrin: s", "Tamsin: "], out
    assert lines[0] == "Orrin: hey" and lines[2] == "Orrin: saturday?", out
    assert "Orrin>" not in out and "(conversation reset)" in err
    transcript = read_jsonl(tmp_path / "run" / "conversation.jsonl")
    assert [(t["speaker"], t["by"], t["conversation"]) for t in transcript] == [
        ("Orrin", "user", 0),
        ("Tamsin", "model", 0),
        ("Orrin", "user", 1),
        ("Tamsin", "model", 1),
    ]
    for turn in transcript[1::2]:
        assert_clean_turn(turn["text"])
    assert summary["replies"] == 2 and summary["mode"] == "chat"
    manifest = runs.read_manifest(tmp_path / "run")
    assert manifest["stage"] == "inference" and manifest["inputs"] == [str(clone_root / "train" / "run")]
    assert (tmp_path / "run" / "conversation.txt").read_text(encoding="utf-8").count("Tamsin:") == 2


def test_chat_at_a_terminal_prompts_on_stderr(clone_root, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    cfg = compose("inference", [f"outputs_root={clone_root}", *SMALL])
    out, err = Terminal(), io.StringIO()
    inference(cfg, tmp_path / "run", stdin=Terminal("hey\n/help\n"), stdout=out, stderr=err, console=quiet())
    assert "chatting with Tamsin as Orrin" in err.getvalue() and err.getvalue().count("Orrin> ") == 3
    assert "/reset" in err.getvalue() and out.getvalue().startswith("Tamsin: ") and "Orrin>" not in out.getvalue()


def test_chat_through_a_pipe(clone_root, tmp_path):
    result = run_script(
        "inference", f"outputs_root={clone_root}", *SMALL, f"hydra.run.dir={tmp_path / 'run'}", stdin="hey\nsaturday?\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.split("\n") if line and not line.startswith(" ")]
    # stdout reads as the conversation: each piped line, then the reply (its further lines indented)
    assert len(lines) == 4 and lines[0] == "Orrin: hey" and lines[2] == "Orrin: saturday?", result.stdout
    assert lines[1].startswith("Tamsin: ") and lines[3].startswith("Tamsin: "), result.stdout
    assert runs.read_manifest(tmp_path / "run")["summary"]["replies"] == 2

    # stdout is exactly the conversation, as printed (a turn's further lines indented under its first, a reply
    # cut at max_new_tokens marked with …): no log lines
    def shown(turn: dict) -> str:
        text = turn["text"] + ("…" if turn.get("stopped") == "max_new_tokens" else "")
        return f"{turn['speaker']}: " + text.replace("\n", "\n" + " " * (len(turn["speaker"]) + 2)) + "\n"

    assert result.stdout == "".join(shown(t) for t in read_jsonl(tmp_path / "run" / "conversation.jsonl"))


def test_prompt_mode_candidates(clone_root, tmp_path):
    summary, out, _ = run_stage(
        inference,
        "inference",
        clone_root,
        tmp_path,
        [
            "mode=prompt",
            "prompt='Pippa: pub quiz?\nOrrin: you in?'",
            "sampling.num_return_sequences=3",
            "sampling.temperature=1.3",
        ],
    )
    assert [line[:12] for line in out.split("\n") if line.startswith("[")] == [
        "[1] Tamsin: ",
        "[2] Tamsin: ",
        "[3] Tamsin: ",
    ]
    rows = read_jsonl(tmp_path / "run" / "generations.jsonl")
    assert [r["candidate"] for r in rows] == [0, 1, 2] and {r["temperature"] for r in rows} == {1.3}
    assert len({r["seconds"] for r in rows}) == 1, "generated together"
    assert summary["tokens_per_s"] == pytest.approx(sum(r["tokens"] for r in rows) / rows[0]["seconds"], rel=0.01)
    assert all(r["tokens"] <= 6 and r["stopped"] in ("end_of_turn", "max_new_tokens", "speaker") for r in rows)
    for row in rows:
        assert_clean_turn(row["text"])
    assert summary["prompt_messages"] == 2 and not (tmp_path / "run" / "conversation.jsonl").exists()


def test_reply_stops_at_end_of_turn(clone_root, tmp_path):
    _, out = forced_inference(
        clone_root, tmp_path, "see you then", ["mode=prompt", "prompt=hey", "sampling.max_new_tokens=20"]
    )
    [row] = read_jsonl(tmp_path / "run" / "generations.jsonl")
    assert row["text"] == "see you then" and row["stopped"] == "end_of_turn" and row["tokens"] == 4
    assert out == "Tamsin: see you then\n"


def test_compiled_decode_steps_stop_at_end_of_turn_in_a_chat(clone_root, tmp_path):
    _, out = forced_inference(
        clone_root,
        tmp_path,
        "see you then",
        ["compile_decode=true", "sampling=greedy", "sampling.max_new_tokens=20"],
        stdin="hey\n",
    )
    [turn] = [t for t in read_jsonl(tmp_path / "run" / "conversation.jsonl") if t["by"] == "model"]
    assert (turn["text"], turn["stopped"], turn["tokens"]) == ("see you then", "end_of_turn", 4)
    assert out == "Orrin: hey\nTamsin: see you then\n"


def test_compiled_decode_step_matches_the_eager_one(clone_root):
    import torch
    from transformers import DynamicCache, StaticCache

    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.fastdecode import compile_decode_steps

    cfg = compose("inference", [f"outputs_root={clone_root}"])
    model = load_clone(locate(cfg), cfg).model
    ids = torch.arange(5, 25)[None]
    logits = {}
    for name, cache in (
        ("eager", DynamicCache(config=model.config)),
        ("compiled", StaticCache(config=model.config, max_cache_len=128)),
    ):
        if name == "compiled":
            compile_decode_steps(model, cache_step=128)
        with torch.inference_mode():
            model(input_ids=ids[:, :-1], past_key_values=cache, use_cache=True)
            logits[name] = model(input_ids=ids[:, -1:], past_key_values=cache, use_cache=True).logits
    assert model.static_cache_step == 128
    torch.testing.assert_close(logits["compiled"], logits["eager"], rtol=0, atol=2e-2)


def test_reply_is_cut_at_another_speakers_line_while_streaming(clone_root, tmp_path):
    summary, out = forced_inference(
        clone_root,
        tmp_path,
        "Tamsin: ok\nsure\nOrrin: great see you",
        ["sampling.max_new_tokens=30"],
        end=False,
        stdin="hey\n",
    )
    assert out == "Orrin: hey\nTamsin: ok\n        sure\n", out
    [turn] = [t for t in read_jsonl(tmp_path / "run" / "conversation.jsonl") if t["by"] == "model"]
    assert turn["text"] == "ok\nsure" and turn["cut_at"] == "Orrin" and turn["stopped"] == "speaker"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(clone_root / "train" / "run" / "final")
    assert turn["tokens"] == len(tokenizer("Tamsin: ok\nsure\nOrrin:")["input_ids"]), "stopped at the cut"
    assert summary["speaker_cuts"] == 1


@pytest.mark.parametrize("sampling, attempts", [("default", 3), ("greedy", 1)])
def test_a_turn_cut_to_nothing_is_drawn_again(clone_root, tmp_path, sampling, attempts):
    summary, out = forced_inference(clone_root, tmp_path, "Orrin: hi", [f"sampling={sampling}"], stdin="hey\n")
    [turn] = [t for t in read_jsonl(tmp_path / "run" / "conversation.jsonl") if t["by"] == "model"]
    assert turn["attempts"] == attempts and turn["text"] == "" and turn["cut_at"] == "Orrin"
    # one turn shown, honestly: `(no reply)`; the draws before it are in generations.jsonl, marked not shown
    assert (summary["replies"], summary["empty_replies"], summary["speaker_cuts"]) == (1, 1, 0)
    assert (summary["draws"], summary["redrawn"]) == (attempts, attempts - 1)
    rows = read_jsonl(tmp_path / "run" / "generations.jsonl")
    assert [(r["attempt"], r["shown"]) for r in rows] == [(k, k == attempts) for k in range(1, attempts + 1)]
    assert out == "Orrin: hey\nTamsin: (no reply)\n"
    assert "Tamsin: (no reply)" in (tmp_path / "run" / "conversation.txt").read_text(encoding="utf-8")


def test_chat_reuses_the_kv_cache_with_the_same_replies(clone_root):
    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.generate import Generator

    # fast_decode=false: the check is that reusing the cache is exact; with bfloat16 decode steps the cached reply
    # tokens' keys and values differ in the last bits from a fresh float32 prompt pass.
    cfg = compose(
        "inference", [f"outputs_root={clone_root}", "sampling=greedy", "sampling.max_new_tokens=5", "fast_decode=false"]
    )
    clone = load_clone(locate(cfg), cfg)
    texts, reused = {}, []
    for reuse in (False, True):
        generator = Generator(
            clone,
            cfg.sampling,
            ["Tamsin", "Orrin"],
            reuse_cache=reuse,
        )
        if reuse:
            take = generator.prefix.take

            def spy(model, ids, take=take):
                cache = take(model, ids)
                reused.append((cache.get_seq_length(), len(ids)))
                return cache

            generator.prefix.take = spy
        history, texts[reuse] = [], []
        for message in ("hey", "saturday?", "bring the thermos"):
            history.append(clone.prompts.message("Orrin", message))
            ids, _ = clone.prompts.fit(history, "Tamsin", 500)
            [reply] = generator.turn(ids, "Tamsin", n=1, on_text=lambda text: None)
            texts[reuse].append(reply.text)
            history.append(clone.prompts.message("Tamsin", reply.text or "ok"))
    assert texts[True] == texts[False]
    assert reused[0][0] == 0 and all(cached > prompt // 2 for cached, prompt in reused[1:]), reused


class CtrlC(Scripted):
    """Forces `ids`, then raises KeyboardInterrupt (what Ctrl-C does) while choosing token `at`."""

    def __init__(self, ids: list[int], at: int):
        super().__init__(ids)
        self.at = at

    def __call__(self, input_ids, scores):
        forced = super().__call__(input_ids, scores)
        if input_ids.shape[1] - self.start == self.at:
            raise KeyboardInterrupt
        return forced


def test_ctrl_c_keeps_the_streamed_part_and_the_chat_goes_on(clone_root):
    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.generate import Generator

    cfg = compose("inference", [f"outputs_root={clone_root}", "sampling=greedy", "sampling.max_new_tokens=12"])
    clone = load_clone(locate(cfg), cfg)
    words = clone.tokenizer(" one two three four five six", add_special_tokens=False)["input_ids"]
    ctrl_c = CtrlC(words, at=4)
    generator = Generator(
        clone,
        cfg.sampling,
        ["Tamsin", "Orrin"],
        logits_processor=[ctrl_c],
    )
    history = [clone.prompts.message("Orrin", "count for me")]
    ids, _ = clone.prompts.fit(history, "Tamsin", 500)
    shown: list[str] = []
    [reply] = generator.turn(ids, "Tamsin", n=1, on_text=shown.append)
    assert reply.stopped == "interrupted" and reply.tokens == 4 and reply.text == "one two three four"
    assert "".join(shown).strip() == "one two three four" and reply.first_token_s is not None
    ctrl_c.at, ctrl_c.start = None, None  # the next turn runs to the end: the interrupted turn's cache is not reused
    history += [clone.prompts.message("Tamsin", reply.text), clone.prompts.message("Orrin", "go on")]
    ids, _ = clone.prompts.fit(history, "Tamsin", 500)
    [after] = generator.turn(ids, "Tamsin", n=1, on_text=lambda text: None)
    assert after.stopped == "max_new_tokens" and after.text.startswith("one two three four five six six")


def test_base_run_and_merged_checkpoint(clone_root, tmp_path):
    summary, out, _ = run_stage(
        inference, "inference", clone_root, tmp_path / "a", ["run=base", "mode=prompt", "prompt=hey"]
    )
    assert summary["clone"]["kind"] == "base" and summary["base_only"] and out.startswith("Tamsin: ")
    summary, _, _ = run_stage(
        inference,
        "inference",
        clone_root,
        tmp_path / "b",
        ["checkpoint=merged", "mode=prompt", "prompt=hey", "sampling=greedy"],
    )
    assert summary["clone"]["kind"] == "merged"


@pytest.mark.parametrize("problem", ["missing_run", "no_best", "other_base", "requested_base", "stdin_empty"])
def test_bad_inputs_fail_before_the_model_loads(clone_root, tmp_path, monkeypatch, problem):
    import chatclone.generation.running as running_module

    monkeypatch.setattr(running_module, "load_clone", lambda *a: pytest.fail("the model was loaded"))
    overrides, message = {
        "missing_run": ([f"run={tmp_path / 'nope'}"], "no such run dir"),
        "no_best": (["checkpoint=best"], "no best/"),
        "other_base": ([f"run={tmp_path / 'copy'}"], "trained on /somewhere/else"),
        "requested_base": ([f"base_model={tmp_path}"], "only fits the base"),
        "stdin_empty": (["mode=prompt", "prompt=-"], "stdin was empty"),
    }[problem]
    if problem == "other_base":
        shutil.copytree(clone_root / "train" / "run", tmp_path / "copy")
        config = tmp_path / "copy" / "final" / "adapter_config.json"
        config.write_text(
            config.read_text().replace(
                str(json.loads(config.read_text())["base_model_name_or_path"]), "/somewhere/else"
            )
        )
    with pytest.raises(ChatcloneError, match=message):
        run_stage(inference, "inference", clone_root, tmp_path, overrides)


@pytest.mark.slow
def test_sweep_writes_each_job_and_a_table(clone_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "inference",
        "-m",
        f"outputs_root={clone_root}",
        *SMALL,
        "mode=prompt",
        "prompt=hey",
        "sampling.temperature=0.5,1.0",
        f"hydra.sweep.dir={sweep}",
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job, temperature in (("0", 0.5), ("1", 1.0)):
        [row] = read_jsonl(sweep / job / "generations.jsonl")
        assert row["temperature"] == temperature and runs.read_manifest(sweep / job)["stage"] == "inference"
    table = (sweep / "sweep_table.md").read_text(encoding="utf-8")
    assert "sampling.temperature=0.5" in table and "sampling.temperature=1.0" in table
    assert len((sweep / "sweep_table.csv").read_text(encoding="utf-8").strip().split("\n")) >= 3


def test_wandb_table_has_no_chat_text_unless_opted_in(clone_root, tmp_path):
    forced_inference(clone_root, tmp_path, "zebracrossing", ["mode=prompt", "prompt=quokkas", "wandb.mode=offline"])
    [offline] = (tmp_path / "run" / "wandb").glob("offline-run-*")
    blob = b"".join(p.read_bytes() for p in offline.rglob("*") if p.is_file())
    assert b"tokens_per_s" in blob and b"zebracrossing" not in blob and b"quokkas" not in blob
    assert "zebracrossing" in (tmp_path / "run" / "generations.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("log_samples", [False, True])
def test_wandb_text_columns_only_with_log_samples(tmp_path, monkeypatch, log_samples):
    from types import SimpleNamespace

    from chatclone.generation.records import log_wandb

    logged: dict = {}

    class Run:
        summary: dict = {}

        def log(self, data):
            logged.update(data)

        def finish(self):
            logged["finished"] = True

    fake = SimpleNamespace(
        init=lambda **kwargs: logged.update(init=kwargs) or Run(),
        Table=lambda columns, data: SimpleNamespace(columns=columns, data=data),
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = compose("inference", ["wandb.mode=offline", f"wandb.log_samples={str(log_samples).lower()}"])
    rows = [{"speaker": "Tamsin", "text": "secret", "tokens": 3, "temperature": 0.7}]
    assert log_wandb(cfg, tmp_path / "run", "inference", rows, {"replies": 1}) == ["wandb"]
    table = logged["generations"]
    assert ("text" in table.columns) is log_samples and ("secret" in table.data[0]) is log_samples
    assert "tokens" in table.columns and logged["init"]["mode"] == "offline" and logged["finished"]


# --- generate_from_prompt.py and simulate_conversation.py -----------------------------------------------------------


def test_generate_from_prompt_grows_a_conversation(clone_root, tmp_path):
    summary, out, _ = run_stage(
        generate_from_prompt,
        "generate_from_prompt",
        clone_root,
        tmp_path,
        ["prompt=Pippa: pub quiz tonight?", "speakers=[Orrin,Pippa]", "turns=4"],
    )
    turns = read_jsonl(tmp_path / "run" / "conversation.jsonl")
    assert turns[0] == {**turns[0], "speaker": "Pippa", "by": "prompt", "text": "pub quiz tonight?"}
    assert len(turns) == 5 and turns[1]["speaker"] == "Tamsin" and summary["replies"] == 4
    for before, turn in zip(turns, turns[1:]):  # the target answers everyone; the others answer the target
        assert (turn["speaker"] == "Tamsin") == (before["speaker"] != "Tamsin")
        assert_clean_turn(turn["text"], tuple({"Orrin", "Pippa", "Tamsin"} - {turn["speaker"]}))
    assert out.startswith("Pippa: pub quiz tonight?\nTamsin: ")
    text = (tmp_path / "run" / "conversation.txt").read_text(encoding="utf-8")
    assert text.startswith("# Tamsin with Orrin, Pippa") and "Pippa: pub quiz tonight?" in text
    assert runs.read_manifest(tmp_path / "run")["stage"] == "generate_from_prompt"


@pytest.mark.parametrize("play", ["Orrin", "target"])
def test_simulate_conversation_from_stdin(clone_root, tmp_path, play):
    summary, out, _ = run_stage(
        simulate_conversation,
        "simulate_conversation",
        clone_root,
        tmp_path,
        [f"play={play}", "speakers=[Orrin,Pippa]"],
        stdin="hey all\n/skip\nok bye\n",
    )
    turns = read_jsonl(tmp_path / "run" / "conversation.jsonl")
    player = "Tamsin" if play == "target" else "Orrin"
    typed = [t for t in turns if t["by"] == "user"]
    assert [t["text"] for t in typed] == ["hey all", "ok bye"] and {t["speaker"] for t in typed} == {player}
    assert any(t["by"] == "model" and t["speaker"] == player for t in turns), "/skip let the model play the user"
    assert summary["ended"] == "eof" and summary["player"] == player
    assert {t["speaker"] for t in turns if t["by"] == "model"} - {player} <= {"Tamsin", "Orrin", "Pippa"}
    if play == "target":
        assert turns[0]["speaker"] in ("Orrin", "Pippa") and turns[0]["by"] == "model"
    else:
        assert turns[0] == {**turns[0], "speaker": "Orrin", "by": "user", "text": "hey all"}
    assert f"{player}: hey all\n" in out and f"{player}: ok bye\n" in out, "piped turns are echoed"
    assert "> " not in out and runs.read_manifest(tmp_path / "run")["stage"] == "simulate_conversation"


# --- fast decode ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_decode_linear_is_exact_on_prompts_and_batches_and_close_on_one_token(bias):
    import torch

    from chatclone.generation.fastdecode import DecodeLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96, bias=bias)
    fast = DecodeLinear(linear)
    prompt, step, batch_step = torch.randn(2, 7, 64), torch.randn(1, 1, 64), torch.randn(3, 1, 64)
    # prompts and batched one-token steps (serve.py's rows): the exact float32 path, fast for matrix-matrix products
    assert torch.equal(fast(prompt), linear(prompt)) and torch.equal(fast(batch_step), linear(batch_step))
    assert fast(step).dtype == torch.float32 and fast(step).shape == linear(step).shape
    assert torch.allclose(fast(step), linear(step), rtol=2e-2, atol=2e-2)
    assert not torch.equal(fast(step), linear(step))  # the bfloat16 path really ran for one sequence's step


def test_clone_loads_with_fast_decode_unless_switched_off(clone_root):
    import torch

    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.fastdecode import DecodeLinear

    models = {}
    for fast in ("true", "false"):
        cfg = compose("inference", [f"outputs_root={clone_root}", f"fast_decode={fast}"])
        models[fast] = load_clone(locate(cfg), cfg).model
    swapped = [m for m in models["true"].modules() if isinstance(m, DecodeLinear)]
    assert len(swapped) == 2 * 7 + 1  # 2 layers x (q, k, v, o, gate, up, down) + the output layer
    assert not any(isinstance(m, DecodeLinear) for m in models["false"].modules())
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(models["true"](ids).logits, models["false"](ids).logits)  # prompts: exact float32
        one = models["true"](ids[:, :1]).logits, models["false"](ids[:, :1]).logits
    assert torch.allclose(*one, rtol=5e-2, atol=5e-2) and one[0].argmax() == one[1].argmax()
