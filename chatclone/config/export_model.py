"""Schema of export_model.py: which clone to export (as inference.py finds it), the GGUF type, and what the Ollama
Modelfile needs (its user name and sampling defaults, from the `sampling` group). Defaults and their reasons live in
conf/export_model.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.config.generation import Checkpoint, SamplingConfig, check_names, check_run
from chatclone.config.threads import ThreadsConfig
from chatclone.errors import ChatcloneError

QUANTIZATIONS = ("F16", "Q8_0", "Q4_0", "BF16")
K_QUANTS = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K")


def check_quantization(name: str) -> None:
    """One line for a quantisation this exporter cannot write, before anything loads."""
    if name in QUANTIZATIONS:
        return
    if name.upper() in K_QUANTS:
        raise ChatcloneError(
            f"quantization={name}: the K-quants need llama.cpp's llama-quantize (gguf-py does not "
            f"implement them): export F16, then run `llama-quantize <file>-F16.gguf "
            f"<file>-{name.upper()}.gguf {name.upper()}`"
        )
    raise ChatcloneError(f"quantization={name}: unknown; use one of {', '.join(QUANTIZATIONS)}")


@dataclass
class ExportModelConfig(ThreadsConfig):
    run: str = "latest"  # latest | a train run dir | base (the bare base, format_run's format)
    checkpoint: Checkpoint = Checkpoint.final
    format_run: str = "latest"
    outputs_root: str = "outputs"
    base_model: Optional[str] = None  # null = the run's own base; set: asserted equal to it
    quantization: str = "F16"  # F16 | Q8_0 | Q4_0 | BF16 (K-quants: llama.cpp's llama-quantize)
    name: Optional[str] = None  # the Ollama model name in the README's commands; null = from the target
    user_name: Optional[str] = None  # null = the target's most frequent partner
    check_conversations: int = 50  # validation conversations the Modelfile template is checked on
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def check(self) -> None:
        self.check_threads()
        self.sampling.check()
        check_quantization(self.quantization)
        check_run(self.run, self.checkpoint)
        check_names([self.user_name] if self.user_name is not None else [], "user_name")
        if self.name is not None and not self.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ChatcloneError(f"name={self.name}: an Ollama model name (letters, digits, '-', '_', '.')")
        if self.check_conversations < 1:
            raise ChatcloneError(f"check_conversations={self.check_conversations}: must be at least 1")
        if self.sampling.num_return_sequences != 1:
            raise ChatcloneError("sampling.num_return_sequences: a Modelfile has one reply per turn (set it to 1)")
