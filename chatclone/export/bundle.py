"""The text files beside the GGUF: the Ollama Modelfile and the export's README (commands for Ollama, llama.cpp
and LM Studio, the prompt format spelled out, and the export's manifest)."""

from __future__ import annotations

import json

from chatclone.config.generation import SamplingConfig
from chatclone.errors import ChatcloneError


def modelfile_value(text: str, what: str) -> str:
    """`text` as a triple-quoted Modelfile value, which Ollama's parser keeps byte for byte (or one line why not)."""
    bad = next((ch for ch in text if not (ch.isprintable() or ch in "\n\t")), None)
    if '"""' in text or bad is not None:
        why = 'holds """' if bad is None else f"holds U+{ord(bad):04X}, which Ollama's Modelfile parser drops"
        raise ChatcloneError(f"{what} {why}: it cannot go into a Modelfile unchanged")
    return f'"""{text}"""'


def modelfile(
    gguf_name: str, template: str, system: str, stops: list[str], sampling: SamplingConfig, num_ctx: int
) -> str:
    params = {
        "temperature": 0.0 if sampling.greedy else sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": 0.0,
        "repeat_penalty": sampling.repetition_penalty,
        "num_predict": sampling.max_new_tokens,
        "num_ctx": num_ctx,
    }
    lines = [
        "# Written by chatclone's export_model.py: the clone, its training chat format, and where a reply stops.",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {modelfile_value(template, 'the chat template')}",
    ]
    if system:
        lines.append(f"SYSTEM {modelfile_value(system, 'the system prompt')}")
    lines += [f"PARAMETER stop {modelfile_value(stop, 'a stop text')}" for stop in stops]
    lines += [f"PARAMETER {key} {value}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def readme(name: str, gguf_name: str, example: str, stops: list[str], user_name: str | None, manifest: dict) -> str:
    reverse = " ".join(
        f"-r {json.dumps(s.strip())}" for s in stops[1:]
    )  # the end of turn is an end-of-generation token
    you = (
        (
            f" (you are {user_name}: type plain messages; a line starting with another partner's `Name: ` from the "
            "training data speaks as them)"
        )
        if user_name
        else ""
    )
    return f"""# {name}: chatclone export

`{gguf_name}` is the clone as a GGUF file; `Modelfile` makes it an Ollama model whose template writes the exact chat
format it was trained on and whose stop rules end the reply at its own turn.

## Ollama

```bash
ollama create {name} -f Modelfile
ollama run {name}{"" if not you else "   #" + you}
```

Ollama merges consecutive messages of one role (with a blank line) before the template sees them: `ollama run`
alternates, so this only matters to API clients sending several speakers in a row (send them as one message).

## llama.cpp

The GGUF's chat template (`tokenizer.chat_template`, also in `chat_template.jinja`) is the training format, with the
run's system prompt as the default system message and plain messages written as {user_name or "the user"}'s:

```bash
llama-cli -m {gguf_name} --jinja -cnv {reverse}
llama-server -m {gguf_name} --jinja      # OpenAI-compatible chat API; pass "stop": {json.dumps(stops[1:])}
```

Or as plain text in the training format (the reply starts where the prompt ends):

```bash
llama-cli -m {gguf_name} -no-cnv -n {manifest["sampling"]["max_new_tokens"]} \\
  --temp {manifest["sampling"]["temperature"]} --top-p {manifest["sampling"]["top_p"]} \\
  --top-k {manifest["sampling"]["top_k"]} {reverse} -p "${{prompt%.}}"
```

after `prompt="$(cat prompt_example.txt; echo .)"` (the `.` keeps the prompt's final newline, which `$(...)` and `-f`
drop). `prompt_example.txt` holds the exact bytes of a prompt for one message:

```text
{example}```

## LM Studio

`lms import {gguf_name}`: LM Studio reads the chat template from the GGUF (the training format above, the run's
system prompt by default). Add the stop strings {", ".join(json.dumps(s) for s in stops)} in the model's settings.

## Manifest

```json
{json.dumps(manifest, indent=2, ensure_ascii=False)}
```
"""
