r"""Talk to the clone trained by the newest train.py run (base model + LoRA adapter).

Usage:
    python inference.py                                    # chat: type, read the streamed reply; /reset, /quit
    python inference.py mode=prompt prompt="hey, you up?" sampling.num_return_sequences=3
    echo "hey, saturday still on?" | python inference.py mode=prompt prompt=-
    printf 'hey\nsaturday?\n' | python inference.py      # scripted chat: one message a line
    python inference.py run=outputs/train/<run> checkpoint=best sampling=greedy
    python inference.py run=base mode=prompt prompt="hey"  # the bare base model, same prompt format
    python inference.py mode=compare 'messages=["hey, you up?","free saturday?"]'  # base | clone, both perplexities
    python inference.py -m mode=prompt prompt="hey" sampling.temperature=0.3,0.7,1.0 sampling.top_p=0.8,0.95
    python inference.py -m mode=prompt prompt="hey" sampling.temperature=0.3,1.0 compile_decode=true  # faster
Piped in, stdout is the whole conversation (`Orrin: hey`, `Tamsin: ...`): your lines are echoed, as a
terminal shows what you type; /reset and notes go to stderr.
Writes generations.jsonl (and conversation.jsonl/.txt in chat mode) and manifest.json into a new run dir
under outputs/inference/; a sweep also writes sweep_table.md/.csv into outputs/inference/multirun/<time>/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="inference", version_base="1.3")
def main(cfg) -> None:
    run_stage("inference", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "inference")
