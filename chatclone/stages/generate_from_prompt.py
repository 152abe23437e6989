"""generate_from_prompt: a whole conversation between the clone and named others, grown turn by turn."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from chatclone.config.generation import GenerateFromPromptConfig
from chatclone.generation import running
from chatclone.generation.prompt import parse_prompt
from chatclone.generation.records import write_conversation
from chatclone.generation.session import grow

STAGE = "generate_from_prompt"


def generate_from_prompt(cfg: GenerateFromPromptConfig, run_dir: Path, **io: Unpack[running.StageIO]) -> dict:
    """Print the conversation as it grows; write conversation.jsonl/.txt, generations.jsonl and the manifest."""
    streams, console, spec = running.start(cfg, run_dir, io)
    prompt = running.read_prompt(cfg.prompt, streams)
    speakers = [s for s in running.partners(spec, cfg.speakers, cfg.num_speakers) if s != spec.target]
    opening = parse_prompt(prompt, [spec.target, *speakers, *spec.partners], speakers[0])
    clone = running.load(spec, cfg, console)
    session = running.new_session(clone, cfg, speakers, streams.out, io.get("logits_processor"))
    session.open_with(opening)
    grow(session, speakers, cfg.turns, running.rng(cfg), cfg.allow_same_speaker)
    header = (
        f"# {spec.target} with {', '.join(speakers)} (run={cfg.run}, sampling={cfg.sampling.name}, "
        f"T={cfg.sampling.temperature}, top_p={cfg.sampling.top_p}, seed={cfg.seed})"
    )
    outputs = write_conversation(run_dir, session.transcript, header)
    extra = {"speakers": speakers, "turns": cfg.turns, "prompt_messages": len(opening)}
    return running.finish(cfg, run_dir, STAGE, spec, session.replies, outputs, extra, console)
