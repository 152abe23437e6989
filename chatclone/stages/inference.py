"""inference: chat with a clone (mode=chat), have it answer one message with several candidates (mode=prompt), or
answer messages with the base model and the clone side by side, with both held-out perplexities (mode=compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from rich.console import Console

from chatclone.config.generation import InferenceConfig, Mode
from chatclone.errors import ChatcloneError
from chatclone.evaluation import side_by_side
from chatclone.generation import running
from chatclone.generation.chat import chat
from chatclone.generation.clone import CloneSpec
from chatclone.generation.prompt import parse_prompt
from chatclone.generation.records import write_conversation

STAGE = "inference"


def inference(cfg: InferenceConfig, run_dir: Path, **io: Unpack[running.StageIO]) -> dict:
    """Run a chat session or answer `cfg.prompt`; write generations.jsonl (+ conversation files) and manifest."""
    streams, console, spec = running.start(cfg, run_dir, io)
    prompt = running.read_prompt(cfg.prompt, streams)
    user = cfg.user_name or running.partners(spec, [], 1)[0]
    if user == spec.target:
        raise ChatcloneError(f"user_name={user} is the target: the clone answers the target's partners")
    if cfg.mode is Mode.compare:
        return _compare(cfg, run_dir, spec, user, streams, console)
    opening = parse_prompt(prompt, [spec.target, user, *spec.partners], user) if prompt else None
    clone = running.load(spec, cfg, console)
    session = running.new_session(clone, cfg, [user], streams.out, io.get("logits_processor"))
    outputs: list[str] = []
    if cfg.mode is Mode.prompt:
        for message in opening or []:
            session.add(message["name"], message["content"], "prompt")
        session.generate(spec.target, stream=False, n=cfg.sampling.num_return_sequences)
    else:
        chat(session, user, streams.stdin, streams.out, streams.err, streams.interactive, opening)
        outputs += write_conversation(run_dir, session.transcript, _header(spec.target, user, cfg))
    extra = {"mode": cfg.mode.value, "user": user, "prompt_messages": len(opening or [])}
    return running.finish(cfg, run_dir, STAGE, spec, session.replies, outputs, extra, console)


def _compare(
    cfg: InferenceConfig, run_dir: Path, spec: CloneSpec, user: str, streams: running.Streams, console: Console
) -> dict:
    """mode=compare: each message answered by the base model and by the clone, a table of both on stdout, then
    the held-out perplexity line; generations.jsonl tags every draw with its model and message."""
    conversations = []
    for index, message in enumerate(cfg.messages):
        try:
            conversations.append(parse_prompt(message, [spec.target, user, *spec.partners], user))
        except ChatcloneError as error:
            raise ChatcloneError(f"messages[{index}] {message!r}: {error}") from None
    asked = side_by_side.Questions(conversations, side_by_side.held_out_examples(spec), user)  # before any load
    sides = side_by_side.compare_models(spec, cfg, asked, console)
    side_by_side.print_comparison(Console(file=streams.out), spec.target, conversations, sides)
    extra = {
        "mode": cfg.mode.value,
        "user": user,
        "messages": len(conversations),
        **side_by_side.perplexity_summary(sides),
    }
    replies = [reply for side in sides for draws in side.draws for reply in draws]
    return running.finish(
        cfg,
        run_dir,
        STAGE,
        spec,
        replies,
        [],
        extra,
        console,
        rows=side_by_side.comparison_rows(cfg, sides, conversations),
    )


def _header(target: str, user: str, cfg: InferenceConfig) -> str:
    return (
        f"# chat with {target} as {user} (run={cfg.run}, checkpoint={cfg.checkpoint.value}, "
        f"sampling={cfg.sampling.name}, T={cfg.sampling.temperature}, top_p={cfg.sampling.top_p})"
    )
