"""Fine-tune a model to text like the target, on the newest tokenize_dataset run.

Usage:
    python train.py                                   # embedded SmolLM2 + LoRA, the seeds' recipe
    python train.py preset=overfit                    # many epochs: memorise the style
    python train.py preset=regularized                # early stopping on validation loss, keep the best
    python train.py eval.fidelity=true                # then score the clone against the base (fidelity/)
    python train.py model=phi3 method=qlora           # on a GPU with the model in the local HF cache
    python train.py resume=outputs/train/<killed run> # continue from its last checkpoint, same dataset
    python train.py -m method=lora,full trainer.learning_rate=1e-4,2e-4   # a sweep, one run dir each
    torchrun --nproc_per_node=2 train.py              # DDP (gloo on CPU, nccl on GPU)
Writes checkpoints/, final/ (best/ with regularized, merged/ with export.merge=true), loss_curve.png,
metrics.json, W&B offline files and manifest.json into a new run dir under outputs/train/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg) -> None:
    run_stage("train", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "train")
