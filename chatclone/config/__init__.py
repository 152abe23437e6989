"""Config schemas, registered in Hydra's ConfigStore so a typo'd key or bad enum fails at composition.

Each primary YAML in conf/ lists `<script>_schema` first in its defaults; group options (conf/<group>/*.yaml)
are merged into the typed nodes, so they are checked too. `hydra/chatclone` (conf/hydra/chatclone.yaml) is what
every script's Hydra shares: run dirs, logging, `--help`.
"""

from __future__ import annotations

import os
from datetime import datetime

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

# accept_plain_text: each script calls it before Hydra; compose: a script's config without its script
from chatclone.config.commandline import accept_plain_text, compose  # noqa: F401
from chatclone.config.discord_bot import DiscordBotConfig
from chatclone.config.evaluate_clone import EvaluateCloneConfig
from chatclone.config.export_model import ExportModelConfig
from chatclone.config.generation import GenerateFromPromptConfig, InferenceConfig, SimulateConversationConfig
from chatclone.config.help import HELP, config_groups, script_usage
from chatclone.config.judging import JudgeReportConfig
from chatclone.config.process_messages import ProcessMessagesConfig
from chatclone.config.serve import ServeConfig
from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
from chatclone.config.train import TrainConfig
from chatclone.logs import HYDRA_LOGGING, JOB_LOGGING

STAMP = "%Y-%m-%d_%H-%M-%S-%f"


def run_stamp() -> str:
    """Run dir name: the time now, or, under a launcher (torchrun, accelerate launch), the launcher's start
    time, which every rank on the node shares, so that all ranks agree on one run dir."""
    if "LOCAL_RANK" in os.environ:
        import psutil

        started = psutil.Process(os.getppid()).create_time()
        return datetime.fromtimestamp(started).strftime(STAMP) + "-ddp"
    return datetime.now().strftime(STAMP)


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="process_messages_schema", node=ProcessMessagesConfig)
    # tokenize_dataset.py; its `model` group options (conf/model/*.yaml) merge into the typed ModelConfig node.
    cs.store(name="tokenize_dataset_schema", node=TokenizeDatasetConfig)
    cs.store(name="train_schema", node=TrainConfig)
    # inference.py, generate_from_prompt.py, simulate_conversation.py; their `sampling` group options
    # (conf/sampling/*.yaml) merge into the typed SamplingConfig node.
    cs.store(name="inference_schema", node=InferenceConfig)
    cs.store(name="generate_from_prompt_schema", node=GenerateFromPromptConfig)
    cs.store(name="simulate_conversation_schema", node=SimulateConversationConfig)
    # evaluate_clone.py: the clone settings of the generation scripts plus the `eval` section; its `sampling` group
    # options merge into the typed SamplingConfig node.
    cs.store(name="evaluate_clone_schema", node=EvaluateCloneConfig)
    # serve.py: clones over an OpenAI-compatible API; its `sampling` group options give the requests' defaults.
    cs.store(name="serve_schema", node=ServeConfig)
    # judge_report.py: which judging run to report on. (The web server's `judging` section is JudgingConfig,
    # chatclone/config/judging.py, with its defaults in conf/judging/default.yaml.)
    cs.store(name="judge_report_schema", node=JudgeReportConfig)
    # discord_bot.py: the clones' settings of the generation scripts plus where, when and how often the bot speaks.
    cs.store(name="discord_bot_schema", node=DiscordBotConfig)
    # export_model.py: a clone as GGUF + Ollama Modelfile; its `sampling` group gives the Modelfile's defaults.
    cs.store(name="export_model_schema", node=ExportModelConfig)
    cs.store(group="hydra/help", name="chatclone", node=HELP)
    # Every record to stderr and the run's log, never stdout (chatclone/logs.py).
    cs.store(group="hydra/job_logging", name="chatclone", node=JOB_LOGGING)
    cs.store(group="hydra/hydra_logging", name="chatclone", node=HYDRA_LOGGING)
    if not OmegaConf.has_resolver("run_stamp"):
        OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True)
    if not OmegaConf.has_resolver("config_groups"):
        OmegaConf.register_new_resolver("config_groups", config_groups)
    if not OmegaConf.has_resolver("script_usage"):
        OmegaConf.register_new_resolver("script_usage", script_usage)


register()
