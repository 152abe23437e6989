"""Export a clone for llama.cpp, Ollama and LM Studio: a GGUF file, an Ollama Modelfile and a README of commands.

Usage:
    python export_model.py                                  # the newest train run's clone, F16
    python export_model.py quantization=Q8_0                # or Q4_0, BF16 (K-quants: llama.cpp's llama-quantize)
    python export_model.py run=outputs/train/<run> checkpoint=best name=tamsin
    python export_model.py run=base                         # the bare base model, in the newest run's chat format
    python export_model.py sampling=greedy user_name=Orrin  # the Modelfile's sampling defaults and your name
quantization: F16 (default), BF16, Q8_0, Q4_0. The K-quants (Q4_K_M, Q5_K_M, ...) are not implemented by gguf-py:
export F16, then `llama-quantize <file>-F16.gguf <file>-Q4_K_M.gguf Q4_K_M` (llama.cpp). Exported: Llama-architecture
models with byte-level BPE vocabularies (smollm2, Llama/Mistral hub models with such a tokenizer); gpt2 and phi3
are refused with the reason.
Writes <name>-<type>.gguf, Modelfile, README.md and manifest.json into outputs/export_model/<time>/; then
`ollama create <name> -f Modelfile && ollama run <name>` there.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="export_model", version_base="1.3")
def main(cfg) -> None:
    run_stage("export_model", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "export_model")
