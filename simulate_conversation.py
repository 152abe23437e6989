r"""A group chat where you play one participant and the model plays the rest, the target included.

Usage:
    python simulate_conversation.py                        # you: the target's usual partner; /skip /reset /quit
    python simulate_conversation.py play=target speakers=[Orrin,Pippa]   # you are the target
    python simulate_conversation.py play=Pippa prompt="Orrin: anyone up for the hut?"
    printf 'hey\nsaturday?\n' | python simulate_conversation.py      # scripted: one of your turns a line
Commands while playing: /skip (the model takes your turn), /reset, /quit.
Prints the conversation and writes conversation.jsonl, conversation.txt, generations.jsonl and manifest.json
into a new run dir under outputs/simulate_conversation/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="simulate_conversation", version_base="1.3")
def main(cfg) -> None:
    run_stage("simulate_conversation", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "simulate_conversation")
