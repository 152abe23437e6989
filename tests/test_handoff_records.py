"""The stage hand-off format (chatclone.chat_records): what process_messages writes is what every reader reads back,
a bad line is one error naming the file and line, and one rule says which turns are trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatclone.chat_records import ChatMessage, ChatRecord, is_trained, read_records, split_file, write_records
from chatclone.errors import ChatcloneError
from chatclone.evaluation.data import _contexts
from chatclone.metrics.splits import turn_texts
from chatclone.modeling import resolve_model, same_model
from chatclone.stages.process_messages import process_messages
from tests.conftest import DM, ROOT, make_config, quiet, read_jsonl

GOOD = {
    "id": "c-w0",
    "channel": "Direct Messages / Orrin",
    "channel_id": "1118608583297251434",
    "start": "2025-03-27T18:02:14Z",
    "end": "2025-03-27T19:52:40Z",
    "messages": [
        {"role": "user", "name": "Orrin", "content": "hey"},
        {"role": "assistant", "name": "Tamsin", "content": "old reply", "train": False},
        {"role": "user", "name": "Orrin", "content": "so?"},
        {"role": "assistant", "name": "Tamsin", "content": "yesss"},
    ],
}


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_record_round_trips_to_the_same_line(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", json.dumps(GOOD))
    [record] = read_records(path)
    assert record.id == "c-w0" and record.channel_id == "1118608583297251434" and record.end == GOOD["end"]
    assert record.messages[1] == ChatMessage("assistant", "old reply", "Tamsin", train=False)
    with open(tmp_path / "again.jsonl", "xb") as f:
        write_records(f, [record, record])
    assert read_jsonl(tmp_path / "again.jsonl") == [GOOD, GOOD]
    assert list(read_records(tmp_path / "again.jsonl")) == [record, record]


def test_process_messages_output_reads_back_unchanged(tmp_path):
    run_dir = tmp_path / "run"
    process_messages(make_config([ROOT / "examples" / "sample_exports" / f"{DM}.json"]), run_dir, console=quiet())
    for split in ("train", "validation"):
        path = run_dir / split_file(split)
        assert [r.to_json() for r in read_records(path)] == read_jsonl(path)
    records = list(read_records(run_dir / "train.jsonl"))
    assert records and all(r.channel == "Direct Messages / Orrin" and r.start <= r.end for r in records)
    assert {m.role for r in records for m in r.messages} == {"user", "assistant"}


def test_a_record_needs_only_messages_and_takes_its_line_number_as_id(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", "", '{"messages": [{"role": "user", "content": "hi"}]}')
    [record] = read_records(path)
    assert record == ChatRecord("2", [ChatMessage("user", "hi")])
    assert record.channel is None and record.messages[0].name is None and record.messages[0].train is True


def test_an_empty_file_has_no_records_but_a_missing_file_is_refused(tmp_path):
    assert list(read_records(write_lines(tmp_path / "validation.jsonl"))) == []
    assert turn_texts(tmp_path / "validation.jsonl") == ([], [])
    with pytest.raises(ChatcloneError, match=r"nowhere[/\\]train.jsonl: no such split file$"):
        list(read_records(tmp_path / "nowhere" / "train.jsonl"))


MESSAGE = '{"role": "user", "content": "hi"}'


@pytest.mark.parametrize(
    "line, error",
    [
        ('{"messages": [', "not a JSON line (is this a process_messages output?)"),
        ("[1, 2]", "not a chat record: an array, not an object (is this a process_messages output?)"),
        ('"text"', "not a chat record: a string, not an object (is this a process_messages output?)"),
        ('{"id": "x"}', "record has no `messages` list (is this a process_messages output?)"),
        ('{"messages": "hi"}', "the record's `messages` is a string, not a list (is this a process_messages output?)"),
        (f'{{"messages": [{MESSAGE}, 3]}}', "message 2 is a number, not an object"),
        ('{"messages": [{"content": "hi"}]}', "message 1 has no `role`"),
        (f'{{"messages": [{MESSAGE}, {{"role": "assistant"}}]}}', "message 2 has no `content`"),
        (
            '{"messages": [{"role": "system", "content": "hi"}]}',
            "message 1: `role` is 'system', not 'user' or 'assistant'",
        ),
        ('{"messages": [{"role": 1, "content": "hi"}]}', "message 1: `role` is a number, not a string"),
        ('{"messages": [{"role": "user", "content": null}]}', "message 1: `content` is null, not a string"),
        (
            '{"messages": [{"role": "user", "content": "hi", "name": 7}]}',
            "message 1: `name` is a number, not a string or null",
        ),
        (
            '{"messages": [{"role": "assistant", "content": "hi", "train": "no"}]}',
            "message 1: `train` is a string, not true or false",
        ),
        (f'{{"id": 5, "messages": [{MESSAGE}]}}', "`id` is a number, not a string"),
        (f'{{"start": 1700000000, "messages": [{MESSAGE}]}}', "`start` is a number, not a string or null"),
    ],
)
def test_every_bad_line_is_one_error_naming_file_and_line(tmp_path, line, error):
    path = write_lines(tmp_path / "train.jsonl", json.dumps(GOOD), "", line)
    with pytest.raises(ChatcloneError) as info:
        list(read_records(path))
    assert str(info.value) == f"{path}:3: {error}"


def test_every_reader_of_the_splits_refuses_the_same_bad_line(tmp_path):
    path = write_lines(tmp_path / "validation.jsonl", json.dumps(GOOD), '{"messages": [{"role": "user"}]}')
    for read in (turn_texts, _contexts):
        with pytest.raises(ChatcloneError, match=r"validation.jsonl:2: message 1 has no `content`$"):
            read(path)


def test_is_trained_on_each_kind_of_turn():
    target, repeated, other = (
        ChatMessage("assistant", "yesss", "Tamsin"),
        ChatMessage("assistant", "old reply", "Tamsin", train=False),
        ChatMessage("user", "hey", "Orrin"),
    )
    assert [is_trained(m) for m in (target, repeated, other)] == [True, False, False]
    # the chat-template code asks about message dicts: the same answers
    assert [is_trained(m.to_json()) for m in (target, repeated, other)] == [True, False, False]
    assert is_trained({"role": "assistant", "content": "x", "train": True})
    assert not is_trained({"role": "user", "content": "x", "train": True})


def test_new_messages_skip_the_turns_repeated_from_the_window_before(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", json.dumps(GOOD))
    [record] = read_records(path)
    assert [m.content for m in record.new_messages] == ["so?", "yesss"]
    assert turn_texts(path) == (["so?", "yesss"], [False, True])
    [context] = _contexts(path)
    assert context.record == "c-w0" and context.reply == "yesss" and len(context.history) == 3


def test_resolve_model_names_every_kind_of_model_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATCLONE_CACHE", str(tmp_path / "cache"))
    embedded = resolve_model("embedded")  # nothing is converted until it is loaded
    assert embedded.embedded and embedded.name == str((tmp_path / "cache" / "smollm2-135m-instruct").resolve())
    assert not (tmp_path / "cache").exists()
    assert resolve_model(embedded.name) == embedded and same_model("embedded", embedded.name)
    folder = tmp_path / "model"
    folder.mkdir()
    gguf = folder / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("model").name == str(folder.resolve()) and not resolve_model("model").embedded
    assert resolve_model("model/model.gguf").from_pretrained_args() == (
        str(folder.resolve()),
        {"gguf_file": "model.gguf", "local_files_only": True},
    )
    assert resolve_model("org/some-model").name == "org/some-model"
    assert resolve_model("./absent").name == "./absent" and not same_model("./absent", "model")
    with pytest.raises(ChatcloneError, match="not a model folder or a .gguf file"):
        resolve_model("./absent").from_pretrained_args()
