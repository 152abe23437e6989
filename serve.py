"""Serve clones over an OpenAI-compatible API (/v1/chat/completions, /v1/models) with a web chat page at /.

Usage:
    python serve.py                                              # the newest train run, http://127.0.0.1:8000/
    python serve.py 'clones=[outputs/train/<run a>,outputs/train/<run b>]' port=8080
    CHATCLONE_API_KEY=... python serve.py host=0.0.0.0           # any other host needs an api key
    python serve.py max_batch=1                                  # strictly one request after another
    python serve.py judging.source=latest 'judging.judges=[ann,bo]'   # + the blind judging page at /judge
    curl -s localhost:8000/v1/models                             # the clones served (README: chat requests)
Writes serve.log (no chat text; conversations.jsonl only with log_conversations=true) and, at Ctrl-C,
manifest.json into outputs/serve/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="serve", version_base="1.3")
def main(cfg) -> None:
    run_stage("serve", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    launch(main, "serve")
