"""How much does the clone sound like the target? Held-out perplexity of the target's real replies, style
attribution and surface statistics of generated replies, base model vs fine-tuned clone.

Usage:
    python evaluate_clone.py                                  # newest train run, final/, sampling=default
    python evaluate_clone.py run=outputs/train/<run> checkpoint=best
    python evaluate_clone.py sampling=greedy eval.max_contexts=100
    python evaluate_clone.py eval.max_contexts=100 compile_decode=true  # ~1.4x the tokens/s after a compile
    python evaluate_clone.py -m sampling.temperature=0.3,0.7  # sweep: one row per job in sweep_table.md
Writes report.md, metrics.json, samples.jsonl, perplexity.png, attribution.png, lengths.png, W&B offline
files and manifest.json into a new run dir under outputs/evaluate_clone/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage
from chatclone.sweeps import current_sweep_dir


@hydra.main(config_path="conf", config_name="evaluate_clone", version_base="1.3")
def main(cfg) -> None:
    run_stage("evaluate_clone", OmegaConf.to_object(cfg), sweep_dir=current_sweep_dir())  # imported after threads


if __name__ == "__main__":
    launch(main, "evaluate_clone")
