"""Export a clone for llama.cpp, Ollama and LM Studio: a GGUF file, an Ollama Modelfile and a README of commands.

Usage:
    python export_model.py                                  # the newest train run's clone, F16
    python export_model.py quantization=Q8_0                # or Q4_0, BF16 (K-quants: llama.cpp's llama-quantize)
    python export_model.py run=outputs/train/<run> checkpoint=best name=tamsin
    python export_model.py run=base                         # the bare base model, in the newest run's chat format
    python export_model.py sampling=greedy user_name=Orrin  # the Modelfile's sampling defaults and your name
Writes <name>-<type>.gguf, Modelfile, README.md and manifest.json into outputs/export_model/<time>/; then
`ollama create <name> -f Modelfile && ollama run <name>` there.
"""

import hydra
from omegaconf import OmegaConf

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone.cli import run_stage


@hydra.main(config_path="conf", config_name="export_model", version_base="1.3")
def main(cfg) -> None:
    run_stage("export_model", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    chatclone.config.accept_plain_text("export_model")  # free text needs no Hydra quoting
    main()
