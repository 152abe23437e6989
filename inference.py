"""Talk to a clone: an interactive chat (the default) or one prompt answered with several candidates.

Usage:
    python inference.py                                         # chat with the newest train run's clone
    printf 'hey\nsaturday still on?\n' | python inference.py    # scripted chat: one message a line
    python inference.py mode=prompt prompt="hey you up?" sampling.num_return_sequences=3
    python inference.py run=base mode=prompt prompt="hey"       # the bare base model, for comparison
    python inference.py mode=compare 'messages=["hey, you up?","free saturday?"]'   # base | clone side by side
    python inference.py -m mode=prompt prompt="hey" sampling.temperature=0.3,0.7,1.0 sampling.top_p=0.8,0.95
Writes generations.jsonl (conversation.jsonl/.txt in chat mode) and manifest.json into outputs/inference/.
"""

import hydra
from omegaconf import OmegaConf

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone.cli import run_stage


@hydra.main(config_path="conf", config_name="inference", version_base="1.3")
def main(cfg) -> None:
    run_stage("inference", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    chatclone.config.accept_plain_text("inference")  # free text needs no Hydra quoting
    main()
