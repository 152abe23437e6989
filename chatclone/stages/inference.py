"""inference: chat with a clone (mode=chat) or have it answer one message with several candidates (mode=prompt)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from rich.console import Console

from chatclone.config.generation import InferenceConfig, Mode
from chatclone.errors import ChatcloneError
from chatclone.generation import running
from chatclone.generation.chat import chat
from chatclone.generation.prompt import parse_prompt
from chatclone.generation.records import write_conversation

STAGE = "inference"


def inference(cfg: InferenceConfig, run_dir: Path, stdin: TextIO | None = None, stdout: TextIO | None = None,
              stderr: TextIO | None = None, console: Console | None = None, logits_processor: object = None) -> dict:
    """Run a chat session or answer `cfg.prompt`; write generations.jsonl (+ conversation files) and manifest."""
    streams = running.Streams.of(stdin, stdout, stderr)
    console = console or Console(file=streams.err)
    spec = running.prepare(cfg, run_dir)
    prompt = running.read_prompt(cfg.prompt, streams)
    user = cfg.user_name or running.partners(spec, [], 1)[0]
    if user == spec.target:
        raise ChatcloneError(f"user_name={user} is the target: the clone answers the target's partners")
    opening = parse_prompt(prompt, [spec.target, user, *spec.partners], user) if prompt else None
    clone = running.load(spec, cfg, console)
    session = running.new_session(clone, cfg, [user], streams.out, logits_processor)
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


def _header(target: str, user: str, cfg: InferenceConfig) -> str:
    return f"# chat with {target} as {user} (run={cfg.run}, checkpoint={cfg.checkpoint.value}, " \
           f"sampling={cfg.sampling.name}, T={cfg.sampling.temperature}, top_p={cfg.sampling.top_p})"
