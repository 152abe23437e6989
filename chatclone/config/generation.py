"""Schemas of inference.py, generate_from_prompt.py and simulate_conversation.py, and of the `sampling` group.

The three scripts share how a clone is found and loaded (`CloneStageConfig`, with evaluate_clone) and how it samples
(`sampling`, from conf/sampling/*.yaml). Defaults and the reasons for them live in the YAML files
(conf/shared/clone_stage.yaml, conf/shared/conversation_stage.yaml); the schema's defaults are the same values, which
tests/test_config_layering.py keeps so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Optional

from chatclone.config.threads import ThreadsConfig
from chatclone.config.wandb_config import WandbConfig, WandbMode
from chatclone.errors import ChatcloneError

BASE_RUN = "base"  # run=base: the bare base model, no adapter (for comparison)
PLAY_TARGET = "target"  # simulate_conversation.py play=target: the user plays the target
STDIN_PROMPT = "-"  # prompt=-: read the prompt from stdin
GREEDY_OFF = {"temperature": 1.0, "top_p": 1.0, "top_k": 0}  # the sampling keys' "off" (conf/sampling/greedy.yaml)


class Checkpoint(str, Enum):
    final = "final"
    best = "best"
    merged = "merged"


class Mode(str, Enum):
    chat = "chat"
    prompt = "prompt"
    compare = "compare"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class SamplingConfig:
    name: str = "default"  # which conf/sampling option this came from (recorded with generations)
    do_sample: bool = True
    temperature: float = 1.0  # 0 = greedy, whatever do_sample says
    top_p: float = 1.0  # 1 = off
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    num_return_sequences: int = 1
    max_new_tokens: int = 96

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    def check(self) -> None:
        """Value checks the types cannot express; errors name the override to fix."""
        self._check_applies()
        checks = [
            (self.temperature >= 0, "sampling.temperature", "must be >= 0 (0 = greedy)"),
            (0 < self.top_p <= 1, "sampling.top_p", "must be in (0, 1] (1 = off)"),
            (self.top_k >= 0, "sampling.top_k", "must be >= 0 (0 = off)"),
            (self.repetition_penalty > 0, "sampling.repetition_penalty", "must be > 0 (1 = off)"),
            (self.num_return_sequences >= 1, "sampling.num_return_sequences", "must be at least 1"),
            (self.max_new_tokens >= 1, "sampling.max_new_tokens", "must be at least 1"),
            (
                not self.greedy or self.num_return_sequences == 1,
                "sampling.num_return_sequences",
                "must be 1 with greedy decoding (every candidate would be the same); use sampling=default",
            ),
        ]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}={getattr(self, key.split('.')[1])}: {why}")

    def _check_applies(self) -> None:
        """Greedy decoding (do_sample=false, sampling=greedy) draws nothing: a temperature, top_p or top_k other than
        off would be silently ignored, so it is refused."""
        if self.do_sample:
            return
        for key, off in GREEDY_OFF.items():
            if getattr(self, key) != off:
                raise ChatcloneError(
                    f"sampling.{key}={getattr(self, key)}: greedy decoding (sampling.do_sample=false) "
                    f"does not sample, so {key} does nothing; leave it out, or sample with "
                    "sampling=default"
                )


def check_run(run: str, checkpoint: Checkpoint) -> None:
    """`run` and `checkpoint` of a stage that loads a clone: a run is named, and `base` takes no checkpoint."""
    if not run:
        raise ChatcloneError("run is empty: use `latest`, a train run dir, or `base`")
    if run == BASE_RUN and checkpoint is not Checkpoint.final:
        raise ChatcloneError(
            f"checkpoint={checkpoint.value}: run=base loads no checkpoint (the bare base model); leave checkpoint out"
        )


@dataclass
class CloneStageConfig(ThreadsConfig):
    """What the clone stages (the three generation scripts and evaluate_clone) share: which clone to load, how, how
    it samples, and W&B."""

    run: str = "latest"  # latest | a train run dir | base
    checkpoint: Checkpoint = Checkpoint.final
    outputs_root: str = "outputs"
    base_model: Optional[str] = None  # null = the run's own base; set: asserted equal to it
    dtype: Optional[str] = None  # null = the dtype the model was trained in
    device: Device = Device.auto
    fuse_adapter: bool = True  # merge LoRA weights into the base in memory after loading
    fast_decode: bool = True  # CPU: one-token steps in bfloat16 (chatclone.generation.fastdecode)
    compile_decode: bool = False  # torch.compile the one-token steps (static KV cache); a compile first
    seed: Optional[int] = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    wandb: WandbConfig = field(default_factory=lambda: WandbConfig(mode=WandbMode.disabled))

    def check(self) -> None:
        self.check_threads()
        self.sampling.check()
        check_run(self.run, self.checkpoint)
        if self.dtype is not None and self.dtype not in ("float32", "bfloat16", "float16", "auto"):
            raise ChatcloneError(f"dtype={self.dtype}: use float32, bfloat16, float16, auto or null")

    def check_one_sequence(self, why: str) -> None:
        if self.sampling.num_return_sequences != 1:
            raise ChatcloneError(
                f"sampling.num_return_sequences={self.sampling.num_return_sequences}: {why} (set it to 1)"
            )


@dataclass
class ConversationStageConfig(CloneStageConfig):
    """What the three talking scripts add: the prompt format of run=base, and how often a turn that comes out empty
    is drawn again."""

    format_run: str = "latest"  # run=base: the train run whose prompt format the base model gets
    reply_attempts: int = 3  # draws for a sampled turn that keeps coming out empty, then `(no reply)`

    def check(self) -> None:
        super().check()
        if self.reply_attempts < 1:
            raise ChatcloneError(f"reply_attempts={self.reply_attempts}: must be at least 1")


def clone_settings(source: object, run: str, kind: type = CloneStageConfig) -> CloneStageConfig:
    """How inference.py would find, load and sample the clone in `run`, for a config that serves clones (serve.py,
    discord_bot.py): every field of `kind` that `source` has, kind's defaults for the rest."""
    shared = {f.name: getattr(source, f.name) for f in fields(kind) if f.name != "run" and hasattr(source, f.name)}
    return kind(run=run, **shared)


@dataclass
class InferenceConfig(ConversationStageConfig):
    mode: Mode = Mode.chat
    prompt: Optional[str] = None  # mode=prompt: the message to answer; mode=chat: an opening message
    user_name: Optional[str] = None  # null = the target's most frequent partner in the training data
    messages: list[str] = field(default_factory=list)  # mode=compare: each answered by the base and the clone

    def check(self) -> None:
        super().check()
        check_names([self.user_name] if self.user_name is not None else [], "user_name")
        if self.mode is Mode.compare:
            self._check_compare()
            return
        if self.messages:
            raise ChatcloneError(
                f"messages: only mode=compare answers a list of messages (mode={self.mode.value} "
                "answers prompt=...); add mode=compare or leave messages out"
            )
        if self.mode is Mode.prompt and (self.prompt is None or not str(self.prompt).strip()):
            raise ChatcloneError(
                'prompt is empty: mode=prompt answers one message, e.g. prompt="hey, you up?" '
                "(or prompt=- to read it from stdin)"
            )
        if self.mode is Mode.chat:
            self.check_one_sequence("mode=chat streams one reply at a time")
            if self.prompt == STDIN_PROMPT:
                raise ChatcloneError("prompt=-: mode=chat already reads its messages from stdin")

    def _check_compare(self) -> None:
        if not self.messages or not all(str(m).strip() for m in self.messages):
            raise ChatcloneError(
                "messages: mode=compare needs one or more non-empty messages, e.g. "
                '\'messages=["are you free saturday?","what are you up to?"]\''
            )
        if self.prompt is not None:
            raise ChatcloneError("prompt: mode=compare answers each of messages=[...], not prompt; leave prompt out")
        if self.run == BASE_RUN:
            raise ChatcloneError(
                "run=base: mode=compare puts the base model next to a train run's clone; name the "
                "train run (run=latest or run=outputs/train/<run>)"
            )
        self.check_one_sequence("mode=compare shows one reply per model and message")


@dataclass
class GenerateFromPromptConfig(ConversationStageConfig):
    prompt: str = ""  # the opening message(s); `Name: text` lines name their speakers
    speakers: list[str] = field(default_factory=list)  # [] = the target's most frequent partners
    num_speakers: int = 2  # how many partners `speakers: []` takes from the training data
    turns: int = 8
    allow_same_speaker: bool = False  # true: a speaker may take two turns in a row (a double text)

    def check(self) -> None:
        super().check()
        if not str(self.prompt or "").strip():
            raise ChatcloneError(
                'prompt is empty: pass the opening message, e.g. prompt="who is up for '
                'saturday?" (or prompt=- to read it from stdin)'
            )
        if self.turns < 1:
            raise ChatcloneError(f"turns={self.turns}: must be at least 1")
        if self.num_speakers < 1:
            raise ChatcloneError(f"num_speakers={self.num_speakers}: must be at least 1")
        self.check_one_sequence("generate_from_prompt grows one conversation (run it again, or -m seed=1,2,3)")
        check_names(self.speakers, "speakers")


@dataclass
class SimulateConversationConfig(ConversationStageConfig):
    play: Optional[str] = None  # null = the target's most frequent partner; `target` = you play the target
    speakers: list[str] = field(default_factory=list)  # [] = the target's most frequent partners
    num_speakers: int = 2
    prompt: Optional[str] = None  # optional opening message(s), `Name: text` lines
    max_turns: int = 60  # the simulation ends after this many turns (scripts cannot loop forever)

    def check(self) -> None:
        super().check()
        if self.play is not None and not self.play.strip():
            raise ChatcloneError("play is empty: name the participant you play, `target`, or null")
        if self.max_turns < 1:
            raise ChatcloneError(f"max_turns={self.max_turns}: must be at least 1")
        if self.num_speakers < 1:
            raise ChatcloneError(f"num_speakers={self.num_speakers}: must be at least 1")
        if self.prompt == STDIN_PROMPT:
            raise ChatcloneError("prompt=-: simulate_conversation already reads your turns from stdin")
        self.check_one_sequence("simulate_conversation plays one turn at a time")
        check_names(self.speakers, "speakers")


def check_names(names: list[str], key: str) -> None:
    for name in names:
        if not name.strip() or ":" in name or "\n" in name:
            raise ChatcloneError(f"{key}: {name!r} is not a speaker name (no colons, newlines or empty names)")
