"""A byte-level BPE tokenizer (GPT-2 style: SmolLM2, Llama 3) as GGUF tokenizer metadata, as llama.cpp writes it.

llama.cpp's converter (`get_vocab_base`, `_set_vocab_gpt2`) writes the token list (`[PAD<i>]` for missing ids),
token types (added special tokens and `<|...|>` tokens CONTROL, other added tokens USER_DEFINED, the rest
NORMAL), `tokenizer.ggml.pre` (the pre-tokenizer, chosen by hashing the tokenization of a fixed probe text), and
then gguf-py's `SpecialVocab` (merges, bos/eos/unk/pad ids, add_bos/add_eos, chat template). The probe text and
the hashes of the pre-tokenizers chatclone's models use are copied here; an unknown hash is refused rather than
guessed (llama.cpp would tokenize differently from training).
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

from chatclone.errors import ChatcloneError

# convert_hf_to_gguf.py's get_vocab_base_pre probe text: its tokenization identifies the pre-tokenizer.
PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) "
    "✅ 🦙🦙 3 33 "
    "333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
PRE_TOKENIZERS = {  # sha256 of str(tokenizer.encode(PROBE)) -> tokenizer.ggml.pre (llama.cpp's table)
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM-135M
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
}


def pre_tokenizer(tokenizer: Any, where: Path) -> str:
    digest = sha256(str(tokenizer.encode(PROBE)).encode()).hexdigest()
    if digest not in PRE_TOKENIZERS:
        raise ChatcloneError(
            f"the tokenizer's pre-tokenizer is not one this exporter knows (probe hash {digest[:12]}"
            f"..., known: {', '.join(sorted(set(PRE_TOKENIZERS.values())))}); llama.cpp would split "
            "text differently from training: convert with llama.cpp's convert_hf_to_gguf.py",
            path=where,
        )
    return PRE_TOKENIZERS[digest]


def _looks_special(token: str) -> bool:
    """convert_hf_to_gguf.py's does_token_look_special, for the tokens chatclone's models have."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


def token_list(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens and their types, id by id, as get_vocab_base writes them."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    tokens, types = [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
            continue
        if token in added:
            if tokenizer.added_tokens_decoder[i].special or _looks_special(token):
                types.append(int(gguf.TokenType.CONTROL))
            else:
                token = token.replace("\u2581", " ")  # pre-normalised user-defined spaces
                types.append(int(gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL))
        tokens.append(token)
    return tokens, types


def check_vocab(tokenizer_dir: Path) -> None:
    """A tokenizer this exporter can write, from tokenizer.json alone (before any weights load)."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise ChatcloneError("no tokenizer.json: only fast (tokenizers) BPE vocabularies are exported", path=path)
    model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = "SentencePiece-style (byte_fallback)" if model.get("byte_fallback") else str(model.get("type"))
        raise ChatcloneError(
            f"the tokenizer is a {kind} vocabulary; only byte-level BPE (GPT-2 style: SmolLM2, "
            "Llama 3) is exported: convert merged/ with llama.cpp's convert_hf_to_gguf.py",
            path=path,
        )


def add_vocab(writer: Any, tokenizer_dir: Path, config: Any, chat_template: str | None = None) -> None:
    """The tokenizer.* keys of a byte-level BPE vocabulary (`chat_template`: instead of the tokenizer's own)."""
    import gguf
    from transformers import AutoTokenizer

    check_vocab(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    tokens, types = token_list(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer, tokenizer_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_add_space_prefix(False)  # byte-level BPE: spaces are tokens, never prepended
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise ChatcloneError("tokenizer.json has no BPE merges", path=Path(tokenizer_dir) / "tokenizer.json")
    if "bos" not in special.add_special_token:  # not in tokenizer_config.json: what the tokenizer actually does
        ids = tokenizer("a")["input_ids"]
        special.add_special_token["bos"] = bool(ids) and ids[0] == tokenizer.bos_token_id
    if chat_template is not None:
        special.chat_template = chat_template
    special.add_to_gguf(writer, quiet=True)
