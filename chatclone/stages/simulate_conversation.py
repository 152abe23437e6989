"""simulate_conversation: the user plays one participant of a group chat, the model plays everyone else."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from chatclone.config.generation import PLAY_TARGET, SimulateConversationConfig
from chatclone.generation import running
from chatclone.generation.chat import simulate
from chatclone.generation.prompt import parse_prompt
from chatclone.generation.records import write_conversation

STAGE = "simulate_conversation"


def simulate_conversation(cfg: SimulateConversationConfig, run_dir: Path, **io: Unpack[running.StageIO]) -> dict:
    """Read the user's turns from stdin, generate the others'; write the conversation and the manifest."""
    streams, console, spec = running.start(cfg, run_dir, io)
    plays_target = cfg.play is not None and cfg.play.strip() in (PLAY_TARGET, spec.target)
    player = spec.target if plays_target else cfg.play or running.partners(spec, [], 1)[0]
    others = [s for s in running.partners(spec, cfg.speakers, cfg.num_speakers) if s != spec.target]
    if not plays_target and player not in others:
        others.append(player)
    opening = (
        parse_prompt(cfg.prompt, [spec.target, *others, *spec.partners], player if not plays_target else others[0])
        if cfg.prompt
        else None
    )
    clone = running.load(spec, cfg, console)
    session = running.new_session(clone, cfg, others, streams.out, io.get("logits_processor"))
    model_plays = [s for s in others if s != player]
    ended = simulate(
        session,
        player,
        model_plays,
        running.rng(cfg),
        streams.stdin,
        streams.out,
        streams.err,
        streams.interactive,
        cfg.max_turns,
        opening,
    )
    header = (
        f"# {player} (you) with {', '.join(n for n in session.names if n != player)} (run={cfg.run}, "
        f"sampling={cfg.sampling.name}, T={cfg.sampling.temperature}, top_p={cfg.sampling.top_p})"
    )
    outputs = write_conversation(run_dir, session.transcript, header)
    extra = {
        "player": player,
        "others": others,
        "ended": ended,
        "user_turns": sum(t["by"] == "user" for t in session.transcript),
    }
    return running.finish(cfg, run_dir, STAGE, spec, session.replies, outputs, extra, console)
