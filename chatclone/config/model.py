"""Schema of the `model` config group (conf/model/*.yaml), shared by tokenize_dataset.py and train.py.

One option per supported model family carries everything that differs between them: where the weights are,
how a conversation is rendered (chat template, end-of-turn token, role rules), which modules LoRA adapts,
and the sequence length and dtype to train with. Defaults and the reasons for them live in the YAML files; the
schema's defaults are conf/model/smollm2.yaml's values (the default option), which tests/test_config_layering.py
keeps so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from chatclone.errors import ChatcloneError

EMBEDDED = "embedded"  # name_or_path meaning "the SmolLM2 model bundled with chatclone"
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class Dtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    auto = "auto"  # the checkpoint's own dtype


@dataclass
class ModelConfig:
    group: str = "smollm2"  # which conf/model option this came from (recorded in manifests)
    name_or_path: str = EMBEDDED  # `embedded`, a local folder, or a hub id in the local HF cache
    chat_template: Optional[str] = None  # Jinja; null = the tokenizer's own
    fallback_chat_template: Optional[str] = None  # used only when the tokenizer has no template of its own
    end_of_turn: Optional[str] = "<|im_end|>"  # token closing an assistant turn; null = the tokenizer's eos
    alternating_roles: bool = False  # template needs user/assistant/user/...: merge same-role runs
    system_role: bool = True  # false: fold the system prompt into the first user turn
    max_length: int = 512  # tokens per training sequence
    dtype: Dtype = Dtype.float32
    lora_target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))

    def check(self) -> None:
        """Value checks the types cannot express; errors name the override to fix."""
        if self.max_length < 8:
            raise ChatcloneError(f"model.max_length={self.max_length}: must be at least 8 tokens")
        if not self.name_or_path:
            raise ChatcloneError("model.name_or_path is empty: use `embedded`, a model folder or a hub id")
        if self.end_of_turn == "":
            raise ChatcloneError("model.end_of_turn is empty: name a token, or null for the tokenizer's eos")
