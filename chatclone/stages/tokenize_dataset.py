"""tokenize_dataset: a process_messages run -> a `datasets` DatasetDict of input_ids + labels for train.py.

Labels are the token ids on the target's turns (their end-of-turn token included) and -100 everywhere else.
Everything that can be checked cheaply (the input run, the tokenizer, the template against a probe and the first
conversations, max_length) is checked before the long `datasets.map`.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chatclone import logs, runs
from chatclone.chat_records import ASSISTANT, SPLITS, ChatRecord, read_records, split_file
from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
from chatclone.errors import ChatcloneError
from chatclone.formatting import ChatEncoder, Style
from chatclone.modeling import ModelTokenizer, load_model_tokenizer, save_tokenizer

STAGE = "tokenize_dataset"
INPUT_STAGE = "process_messages"
DEFAULT_MODEL_GROUP = "smollm2"  # train.py's default `model` group (conf/train.yaml)
COLUMNS = ("input_ids", "labels", "length")
BOOKKEEPING = ("trained_tokens", "target_turns", "window", "skipped_turns", "skipped_tokens")
PREFLIGHT_RECORDS = 32
TARGET_NAME_RECORDS = 2000
HISTOGRAM_BINS = 32
TOKENIZERS_PARALLELISM = "TOKENIZERS_PARALLELISM"
# Roles a Discord conversation has: several speakers in a row, target bursts, a context-only target turn.
PROBE = [
    {"role": "user", "name": "Pippa", "content": "probe one"},
    {"role": "user", "name": "Orrin", "content": "probe two"},
    {"role": "assistant", "name": "T", "content": "probe three", "train": False},
    {"role": "assistant", "name": "T", "content": "probe four"},
    {"role": "user", "name": "Pippa", "content": "probe five"},
    {"role": "assistant", "name": "T", "content": "probe six"},
]


def tokenize_dataset(cfg: TokenizeDatasetConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Tokenize the input run's train/validation splits; write dataset/, tokenizer/, stats and manifest."""
    console = console or logs.console()
    cfg.check()
    runs.start_run(run_dir)
    _set_progress(cfg.progress)
    input_dir = runs.resolve_input(cfg.input, Path(cfg.outputs_root), INPUT_STAGE)
    paths = _input_paths(input_dir)
    summary_in = runs.read_manifest(input_dir).get("summary", {})
    _check_target_turns(summary_in, input_dir)
    model = load_model_tokenizer(cfg.model)
    target = cfg.formatting.target_name or _target_name(paths["train"], summary_in)
    system_prompt = cfg.formatting.system_prompt.format(target=target)
    encoder = build_encoder(model, cfg, system_prompt)
    _preflight(encoder, paths["train"], cfg.model.max_length)
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".work-") as work:
        tokenized = {
            split: tokenize_split(read_split(paths[split], Path(work)), encoder, cfg, split) for split in SPLITS
        }
        split_stats = {split: _split_stats(ds, summary_in, split) for split, ds in tokenized.items()}
        _check_trained(split_stats["train"], cfg.model.max_length, paths["train"])
        lengths = [length for ds in tokenized.values() for length in _lengths(ds)]
        _save_dataset(tokenized, run_dir / "dataset")
    save_tokenizer(model.tokenizer, runs.new_file(run_dir, "tokenizer"))
    histogram = _histogram(lengths, cfg.model.max_length, run_dir / "length_histogram.png", cfg.model.group)
    stats = {
        "input": str(input_dir),
        "model": model.info(cfg.model),
        "target": target,
        "system_prompt": system_prompt,
        "splits": split_stats,
        "length_histogram": histogram,
    }
    runs.write_json(run_dir, "stats.json", stats)
    _print_summary(console, stats, run_dir)
    console.print(f"next: {next_command(cfg, run_dir)}", highlight=False, soft_wrap=True)
    runs.finish_run(
        run_dir,
        STAGE,
        cfg,
        inputs=[str(input_dir)],
        outputs=["dataset", "tokenizer", "stats.json", "length_histogram.png"],
        summary={
            "model": stats["model"],
            "target": target,
            "system_prompt": system_prompt,
            "splits": {s: {k: v[k] for k in ("sequences", "tokens", "trained_tokens")} for s, v in split_stats.items()},
        },
    )
    return stats


def build_encoder(model: ModelTokenizer, cfg: TokenizeDatasetConfig, system_prompt: str) -> ChatEncoder:
    style = Style(
        system_prompt=system_prompt,
        system_role=cfg.model.system_role,
        alternating_roles=cfg.model.alternating_roles,
        speaker_names=cfg.formatting.speaker_names,
        merge_separator=cfg.formatting.merge_separator,
    )
    hints = [] if cfg.model.alternating_roles else ["model.alternating_roles=true"]
    hints += ["model.system_role=false"] if cfg.model.system_role and system_prompt else []
    hint = f"; try {' and '.join(hints)}" if hints else ""
    return ChatEncoder(
        model.tokenizer,
        model.template,
        model.end_of_turn,
        style,
        cfg.model.max_length,
        where=f"model={cfg.model.group}",
        hints=hint,
    )


def _set_progress(enabled: bool) -> None:
    import datasets

    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()


def _input_paths(input_dir: Path) -> dict[str, Path]:
    paths = {split: input_dir / split_file(split) for split in SPLITS}
    for path in paths.values():
        if not path.is_file():
            raise ChatcloneError("missing from the process_messages run", path=path)
    return paths


def _check_target_turns(summary: dict, input_dir: Path) -> None:
    turns = summary.get("split", {}).get("train", {}).get("target_turns")
    if turns == 0:
        raise ChatcloneError(
            "the train split has no target turns to learn from: rerun process_messages with "
            "another target or looser cleaning/segmentation",
            path=input_dir,
        )


def _target_name(train: Path, summary: dict) -> str:
    """The name the target has on most of their turns (in the first records), for the system prompt."""
    names = Counter(
        m.name
        for record in islice(read_records(train), TARGET_NAME_RECORDS)
        for m in record.messages
        if m.role == ASSISTANT and m.name
    )
    if names:
        return names.most_common(1)[0][0]
    known = summary.get("target", {}).get("names") or ["the target"]
    return known[0]


def _preflight(encoder: ChatEncoder, train: Path, max_length: int) -> None:
    """Fail in seconds, not after the long map: a probe conversation, the first records, the shortest sequence."""
    first = [_messages(record) for record in islice(read_records(train), PREFLIGHT_RECORDS)]
    for messages in [PROBE, *first]:
        encoder.check(messages)  # renders as transformers' apply_chat_template does
    encoder.encode_batch([PROBE, *first])
    shortest = encoder.minimum_length()
    if shortest > max_length:
        raise ChatcloneError(
            f"model.max_length={max_length} is too small: the system prompt and a one-character "
            f"target turn alone take {shortest} tokens"
        )


def _messages(record: ChatRecord) -> list[dict]:
    """A record's messages as the Arrow rows and the encoder take them."""
    return [{"role": m.role, "name": m.name, "content": m.content, "train": m.train} for m in record.messages]


def read_split(path: Path, work: Path) -> Any:
    """A split file as an on-disk Arrow dataset in `work` (streamed: memory stays flat on big inputs)."""
    import pyarrow as pa
    from datasets import Dataset

    message = pa.struct([("role", pa.string()), ("name", pa.string()), ("content", pa.string()), ("train", pa.bool_())])
    schema = pa.schema([("id", pa.string()), ("messages", pa.list_(message))])
    out = work / f"{path.stem}.arrow"
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        rows: list[dict] = []
        for record in read_records(path):
            rows.append({"id": record.id, "messages": _messages(record)})
            if len(rows) == 10_000:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema))
                rows = []
        writer.write_batch(pa.RecordBatch.from_pylist(rows, schema))
    return Dataset.from_file(str(out))


def _out_features() -> Any:
    from datasets import Features, List, Value

    return Features(
        {
            "input_ids": List(Value("int32")),
            "labels": List(Value("int32")),
            "length": Value("int32"),
            **{name: Value("int32") for name in BOOKKEEPING},
        }
    )


def tokenize_split(ds: Any, encoder: ChatEncoder, cfg: TokenizeDatasetConfig, split: str) -> Any:
    """A `read_split` dataset as sequences: input_ids, labels, length and bookkeeping columns (batched map)."""
    from datasets import Dataset

    if len(ds) == 0:  # an empty validation split (one conversation only): map would drop the columns
        return Dataset.from_dict({name: [] for name in COLUMNS + BOOKKEEPING}, features=_out_features())
    workers = min(cfg.num_proc, max(1, math.ceil(len(ds) / cfg.batch_size)))
    with _single_threaded_tokenizers(workers > 1):
        # A fresh work dir per run: nothing to reuse, so skip hashing the tokenizer for a cache fingerprint.
        return ds.map(
            _encode_batch,
            batched=True,
            batch_size=cfg.batch_size,
            num_proc=workers if workers > 1 else None,
            input_columns="messages",
            remove_columns=ds.column_names,
            features=_out_features(),
            fn_kwargs={"encoder": encoder},
            desc=f"tokenize {split}",
            new_fingerprint=f"tokenize-{split}",
        )


@contextmanager
def _single_threaded_tokenizers(active: bool) -> Iterator[None]:
    """Worker processes are the parallelism: the Rust tokenizer's own threads would only compete with them
    (and, after a fork, tokenizers disables them with a warning unless told so beforehand)."""
    previous = os.environ.get(TOKENIZERS_PARALLELISM)
    if active and previous is None:
        os.environ[TOKENIZERS_PARALLELISM] = "false"
    try:
        yield
    finally:
        if active and previous is None:
            os.environ.pop(TOKENIZERS_PARALLELISM, None)


def _encode_batch(conversations: list[list[dict]], encoder: ChatEncoder) -> dict:
    """datasets.map function: conversations in, one row per sequence out (plus bookkeeping columns)."""
    out: dict[str, list] = {name: [] for name in COLUMNS + BOOKKEEPING}
    for encoded in encoder.encode_batch(conversations):
        rows = [(s.input_ids, s.labels, s.length, s.trained_tokens, s.target_turns) for s in encoded.sequences]
        if not rows and encoded.skipped_turns:
            rows = [([], [], 0, 0, 0)]  # carries the skip counts; dropped before saving
        for window, row in enumerate(rows):
            first = window == 0
            for name, value in zip(
                out, row + (window, encoded.skipped_turns if first else 0, encoded.skipped_tokens if first else 0)
            ):
                out[name].append(value)
    return out


def _split_stats(ds: Any, summary_in: dict, split: str) -> dict:
    import pyarrow.compute as pc

    def total(name: str) -> int:
        return int(pc.sum(ds.data.column(name)).as_py() or 0)

    def count(name: str, predicate: Any, value: int) -> int:
        return int(pc.sum(predicate(ds.data.column(name), value)).as_py() or 0)

    sequences, tokens, trained = count("length", pc.greater, 0), total("length"), total("trained_tokens")
    return {
        "sequences": sequences,
        "windowed_conversations": count("window", pc.equal, 1),
        "tokens": tokens,
        "trained_tokens": trained,
        "trained_fraction": round(trained / tokens, 4) if tokens else 0.0,
        "mean_length": round(tokens / sequences, 1) if sequences else 0.0,
        "max_length_seen": int(pc.max(ds.data.column("length")).as_py() or 0),
        "target_turns_trained": total("target_turns"),
        "target_turns_in_input": summary_in.get("split", {}).get(split, {}).get("target_turns"),
        "target_turns_skipped_too_long": total("skipped_turns"),
        "skipped_tokens": total("skipped_tokens"),
    }


def _check_trained(train: dict, max_length: int, path: Path) -> None:
    skipped = train["target_turns_skipped_too_long"]
    if train["sequences"] == 0 and skipped:
        raise ChatcloneError(
            f"no target turn fits in model.max_length={max_length} ({skipped} turns too long); raise model.max_length",
            path=path,
        )
    if train["sequences"] == 0:
        raise ChatcloneError("no target turns to learn from (no assistant turn with train != false)", path=path)


def _lengths(ds: Any) -> list[int]:
    return [n for n in ds.data.column("length").to_pylist() if n > 0]


def _save_dataset(tokenized: dict, out: Path) -> None:
    from datasets import DatasetDict

    final = {}
    for split, ds in tokenized.items():
        if len(ds) and min(ds.data.column("length").to_pylist()) == 0:
            ds = ds.filter(lambda n: [x > 0 for x in n], input_columns="length", batched=True)
        final[split] = ds.select_columns(list(COLUMNS))
    # datasets writes no shard at all for an empty split, which load_from_disk then cannot read: ask for one.
    shards = {split: (1 if len(ds) == 0 else None) for split, ds in final.items()}
    DatasetDict(final).save_to_disk(str(runs.new_file(out.parent, out.name)), num_shards=shards)


def _histogram(lengths: list[int], max_length: int, path: Path, group: str) -> dict:
    """Sequence length histogram as PNG and as numbers (for stats.json)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS, range=(0, max_length))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="black", linewidth=0.3)
    ax.axvline(max_length, color="red", linestyle="--", label=f"max_length {max_length}")
    ax.set(
        xlabel="tokens per sequence", ylabel="sequences", title=f"tokenize_dataset ({group}): {len(lengths)} sequences"
    )
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(runs.new_file(path.parent, path.name), dpi=100)
    plt.close(fig)
    return {"bin_edges": [round(float(e), 1) for e in edges], "counts": [int(c) for c in counts]}


def _print_summary(console: Console, stats: dict, run_dir: Path) -> None:
    model = stats["model"]
    table = Table(title=f"tokenize_dataset: model={model['group']}, target {stats['target']}")
    table.add_column("what")
    for split in stats["splits"]:
        table.add_column(split, justify="right")
    keys = (
        "sequences",
        "windowed_conversations",
        "tokens",
        "trained_tokens",
        "mean_length",
        "max_length_seen",
        "target_turns_trained",
        "target_turns_skipped_too_long",
    )
    for key in keys:
        table.add_row(key.replace("_", " "), *(str(s[key]) for s in stats["splits"].values()))
    console.print(table)
    console.print(
        f"model {model['name_or_path']}: end of turn {model['end_of_turn']!r} (id "
        f"{model['end_of_turn_id']}), max_length {model['max_length']}",
        highlight=False,
    )
    console.print(f"wrote {run_dir}/dataset, tokenizer/, stats.json, length_histogram.png", highlight=False)


def next_command(cfg: TokenizeDatasetConfig, run_dir: Path) -> str:
    """`python train.py` with the model this dataset was tokenized for (train.py refuses any other)."""
    extra = [f"model={cfg.model.group}"] if cfg.model.group != DEFAULT_MODEL_GROUP else []
    group_file = Path(__file__).resolve().parents[2] / "conf" / "model" / f"{cfg.model.group}.yaml"
    from omegaconf import OmegaConf

    default_path = OmegaConf.load(group_file).get("name_or_path") if group_file.is_file() else None
    if cfg.model.name_or_path != default_path:
        extra.append(f"model.name_or_path={cfg.model.name_or_path}")
    return runs.next_command("train.py", run_dir, cfg.outputs_root, STAGE, extra=extra)
