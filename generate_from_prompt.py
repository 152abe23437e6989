"""A whole conversation between the clone and named others, grown turn by turn from an opening message.

Usage:
    python generate_from_prompt.py prompt="who is up for the ridge loop on saturday?"
    python generate_from_prompt.py prompt="Pippa: pub quiz tonight?" speakers=[Orrin,Pippa] turns=12
    python generate_from_prompt.py prompt="hey" sampling=creative seed=7
    python generate_from_prompt.py -m prompt="hey" seed=1,2,3
Prints the conversation and writes conversation.jsonl, conversation.txt, generations.jsonl and manifest.json
into a new run dir under outputs/generate_from_prompt/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="generate_from_prompt", version_base="1.3")
def main(cfg) -> None:
    run_stage("generate_from_prompt", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "generate_from_prompt")
