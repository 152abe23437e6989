"""process_messages end to end on the shared samples: outputs, target choice, formats agreeing, no overwrite."""

from __future__ import annotations

import json

import pytest

from chatclone import runs
from chatclone.config.process_messages import SplitStrategy
from chatclone.errors import ChatcloneError
from chatclone.stages.process_messages import process_messages
from tests.conftest import DM, GUILD, TARGET_ID, TARGET_USERNAME, make_config, read_jsonl, target_turns


def test_dm_and_guild_outputs(shared, tmp_path):
    run_dir = tmp_path / "run"
    stats = process_messages(make_config([shared / (DM + ".json"), shared / (GUILD + ".json")]), run_dir)
    assert (run_dir / "manifest.json").exists() and (run_dir / "stats.json").exists()
    records = read_jsonl(run_dir / "train.jsonl") + read_jsonl(run_dir / "validation.jsonl")
    roles = {m["role"] for r in records for m in r["messages"]}
    assert roles == {"user", "assistant"}
    assert all(r["messages"][-1]["role"] == "assistant" for r in records)
    guild_names = {m["name"] for r in records if r["channel_id"] == "888880580528273654" for m in r["messages"]}
    assert guild_names == {"tam", "Pippa", "ezraloom", "Marlow"}  # context speakers keep their names; no bot
    assert stats["messages"]["read"] == 102
    assert stats["removed"]["bots"] == 4 and stats["removed"]["commands"] == 1 and stats["removed"]["system"] == 5
    assert stats["target"]["ids"] == [TARGET_ID]
    manifest = runs.read_manifest(run_dir)
    assert manifest["stage"] == "process_messages" and manifest["summary"]["split"]["train"]["examples"] > 0


def test_target_by_id_equals_target_by_username(shared, tmp_path):
    inputs = [shared / (DM + ".json"), shared / (GUILD + ".json")]
    process_messages(make_config(inputs, target=TARGET_ID), tmp_path / "a")
    process_messages(make_config(inputs, target=TARGET_USERNAME.upper()), tmp_path / "b")
    assert target_turns(tmp_path / "a") == target_turns(tmp_path / "b")


@pytest.mark.parametrize("folder", ["", "windows-crlf"])
def test_json_csv_txt_give_the_same_target_turns(shared, tmp_path, folder):
    turns = {}
    for ext in (".json", ".csv", ".txt"):
        cfg = make_config([shared / folder / (DM + ext)], reading={"timezone": "Europe/Berlin"})
        process_messages(cfg, tmp_path / ext[1:])
        turns[ext] = target_turns(tmp_path / ext[1:])
    assert turns[".json"] == turns[".csv"] == turns[".txt"]
    assert len(turns[".json"]) >= 15


def test_partitioned_guild_equals_whole(shared, tmp_path):
    process_messages(make_config([shared / (GUILD + ".json")]), tmp_path / "whole")
    process_messages(make_config([shared / "partitioned"]), tmp_path / "parts")
    for name in ("train.jsonl", "validation.jsonl"):
        assert (tmp_path / "whole" / name).read_text() == (tmp_path / "parts" / name).read_text()


def test_no_target_lists_top_authors(shared, tmp_path):
    with pytest.raises(ChatcloneError) as info:
        process_messages(make_config([shared / (GUILD + ".json")], target=None), tmp_path / "run")
    text = str(info.value)
    assert "no target given" in text and "607216646228391176 tamsin.vale (tam): 12 messages" in text
    assert text.index("tamsin.vale") < text.index("pip.marsh") < text.index("ezraloom")


def test_nickname_is_not_a_target(shared, tmp_path):
    with pytest.raises(ChatcloneError, match="never speaks.*Top authors"):
        process_messages(make_config([shared / (GUILD + ".json")], target="tam"), tmp_path / "run")


def test_target_id_on_txt_only_explains(shared, tmp_path):
    with pytest.raises(ChatcloneError, match=r"no id in TXT\) tamsin.vale"):
        process_messages(make_config([shared / (DM + ".txt")], target=TARGET_ID), tmp_path / "run")


def test_finished_run_is_never_overwritten(shared, tmp_path):
    cfg = make_config([shared / (DM + ".json")])
    process_messages(cfg, tmp_path / "run")
    before = (tmp_path / "run" / "train.jsonl").read_bytes()
    with pytest.raises(ChatcloneError, match="refusing to overwrite"):
        process_messages(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "train.jsonl").read_bytes() == before


def test_temporal_split_puts_newest_in_validation_and_random_is_seeded(shared, tmp_path):
    cfg = make_config([shared / (DM + ".json")])
    process_messages(cfg, tmp_path / "t")
    train, val = read_jsonl(tmp_path / "t" / "train.jsonl"), read_jsonl(tmp_path / "t" / "validation.jsonl")
    assert max(r["start"] for r in train) < min(r["start"] for r in val)
    for name in ("r1", "r2"):
        process_messages(
            make_config([shared / (DM + ".json")], split={"strategy": SplitStrategy.random}), tmp_path / name
        )
    assert (tmp_path / "r1" / "validation.jsonl").read_text() == (tmp_path / "r2" / "validation.jsonl").read_text()


def test_latest_finds_newest_finished_run(shared, tmp_path):
    root = tmp_path / "outputs"
    cfg = make_config([shared / (DM + ".json")])
    process_messages(cfg, root / "process_messages" / "2026-01-01")
    process_messages(cfg, root / "process_messages" / "2026-01-02")
    (root / "process_messages" / "2026-01-03").mkdir()  # unfinished: no manifest
    assert runs.resolve_input("latest", root, "process_messages").name == "2026-01-02"
    with pytest.raises(ChatcloneError, match="no finished tokenize_dataset run"):
        runs.resolve_input("latest", root, "tokenize_dataset")
    with pytest.raises(ChatcloneError, match="expected a tokenize_dataset run"):
        runs.resolve_input(str(root / "process_messages" / "2026-01-02"), root, "tokenize_dataset")


def test_cleaning_leaves_nothing_silently_empty(shared, tmp_path):
    cfg = make_config([shared / (DM + ".json")], cleaning={"max_chars": 2})
    with pytest.raises(ChatcloneError, match="no conversation"):
        process_messages(cfg, tmp_path / "run")


def test_stats_report_every_rule(shared, tmp_path):
    stats = process_messages(make_config([shared]), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert saved["removed"] == stats["removed"] and saved["removed"]["media_only"] == 2
    assert {f["format"] for f in saved["skipped_files"]} >= {"csv", "txt"}
