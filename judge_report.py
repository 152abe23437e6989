"""The blind judging test's result: per judge and overall, the clone-picked rate (decided votes that took the
clone's reply for the target's) with its 95 % interval, and the can't-tell votes. 50 % = the judges cannot tell.

Usage:
    python judge_report.py                                   # the newest judging run under outputs/judging
    python judge_report.py run=outputs/judging/<stamp>
Reads the judging run's votes.sqlite (also while judges vote); writes nothing.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_report
from chatclone.judging.report import report_from_config


@hydra.main(config_path="conf", config_name="judge_report", version_base="1.3")
def main(cfg) -> None:
    run_report(report_from_config, OmegaConf.to_object(cfg))


if __name__ == "__main__":
    launch(main, "judge_report")
