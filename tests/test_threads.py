"""`threads`: what `auto` decides from the core count and the busy-core measurement, what wins over it (an explicit
integer, the user's OMP_NUM_THREADS and OpenMP wait settings), bad values, and a real script run applying it.

Nothing here depends on the machine's load or CPU: the pure functions get their measurements as arguments, and the
script runs force their counts (or take them from the environment)."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone import threads
from chatclone.config.commandline import schemas
from chatclone.config.evaluate_clone import EvaluateCloneConfig
from chatclone.config.generation import InferenceConfig
from chatclone.config.train import TrainConfig
from chatclone.errors import ChatcloneError
from tests.conftest import compose, run_script

MODEL_SCRIPTS = [name for name, schema in schemas().items() if "threads" in {f.name for f in fields(schema)}]


def not_measured() -> float:
    raise AssertionError("auto's measurement ran although something else decides the count")


@pytest.mark.parametrize(
    "cores, busy, expected",
    [
        (2, 0.0, 2),
        (2, 0.3, 2),  # an idle machine, or a little background noise: every core
        (2, 0.5, 1),
        (2, 1.0, 1),
        (2, 1.4, 1),  # one core kept busy by another process (from half busy on)
        (2, 1.9, 1),
        (2, 7.5, 1),
        (1, 0.0, 1),  # at least 1, however busy
        (16, 3.2, 13),
        (16, 3.6, 12),
        (4, -0.2, 4),
    ],
)
def test_auto_is_the_cores_other_processes_leave_free(cores, busy, expected):
    assert threads.auto_threads(cores, busy) == expected


def test_auto_decides_from_the_measurement_it_is_given():
    decision = threads.decide("auto", {}, 2, lambda: 1.04)
    assert decision["count"] == 1 and decision["busy_cores"] == 1.04 and decision["usable_cores"] == 2
    assert decision["source"] == "auto: 2 usable core(s), 1.04 kept busy by other processes"
    assert threads.decide("auto", {"OMP_NUM_THREADS": ""}, 4, lambda: 0.1)["count"] == 4  # empty = not set


@pytest.mark.parametrize("environ", [{}, {"OMP_NUM_THREADS": "1"}])
def test_an_explicit_integer_forces_the_count(environ):
    decision = threads.decide("3", environ, 2, not_measured)
    assert decision["count"] == 3 and decision["source"] == "threads=3"


def test_the_users_omp_num_threads_wins_over_auto():
    decision = threads.decide("auto", {"OMP_NUM_THREADS": "1"}, 2, not_measured)
    assert decision["count"] is None  # torch's own count (it read OMP_NUM_THREADS) stands
    assert decision["source"] == "OMP_NUM_THREADS=1 in the environment (it wins over auto)"


@pytest.mark.parametrize("value", ["0", "-1", "lots", "2.5", "", " ", "auto,2"])
def test_bad_values_are_one_line_naming_the_key(value):
    with pytest.raises(ChatcloneError) as error:
        threads.parse_threads(value)
    assert str(error.value).startswith(f"threads={value}: use auto") and "\n" not in str(error.value)


@pytest.mark.parametrize("schema", [TrainConfig, InferenceConfig, EvaluateCloneConfig])
def test_every_schema_checks_threads_first(schema):
    assert schema().threads == "auto"
    schema(threads="2").check_threads()
    with pytest.raises(ChatcloneError, match=r"^threads=0: "):
        schema(threads="0").check()


@pytest.mark.parametrize("script", MODEL_SCRIPTS)
def test_every_script_that_runs_a_model_has_threads_auto(script):
    assert compose(script).threads == "auto"
    assert compose(script, ["threads=2"]).threads == "2"


@pytest.mark.parametrize("script", ["process_messages", "tokenize_dataset"])
def test_scripts_that_run_no_model_refuse_the_key(script):
    with pytest.raises(ConfigCompositionException):
        compose(script, ["threads=2"])


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, ({"GOMP_SPINCOUNT": "10000"}, "chatclone: GOMP_SPINCOUNT=10000")),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, ({}, "environment: OMP_WAIT_POLICY=ACTIVE")),
        ({"GOMP_SPINCOUNT": "300000"}, ({}, "environment: GOMP_SPINCOUNT=300000")),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, ({}, "environment: OMP_WAIT_POLICY=PASSIVE")),
        ({"KMP_BLOCKTIME": "1"}, ({}, "environment: KMP_BLOCKTIME=1")),
    ],
)
def test_wait_policy_is_a_short_spin_unless_the_user_chose(environ, expected):
    assert threads.wait_policy(environ, openmp_loaded=False) == expected


def test_wait_policy_is_left_alone_once_openmp_has_read_it():
    variables, why = threads.wait_policy({}, openmp_loaded=True)
    assert variables == {} and why.startswith("the runtime's default: OpenMP was loaded before")


def test_busy_cores_is_a_share_of_the_cpus_sampled():
    cpus = threads.usable_cpus()
    assert 1 <= len(cpus) <= (os.cpu_count() or 1)
    assert 0.0 <= threads.busy_cores(cpus[:1], seconds=0.05) <= 1.0


# --- a real script run applies the setting and records it in its manifest -----------------------------------------


def train_script(root: Path, dm_tokenized: Path, tiny_llama: Path, extra: list[str], env: dict[str, str]) -> dict:
    run_dir = root / "run"
    result = run_script(
        "train",
        f"outputs_root={root}",
        f"input={dm_tokenized / 'tokenize_dataset' / 'run'}",
        f"model.name_or_path={tiny_llama}",
        "trainer.max_steps=1",
        "wandb.mode=disabled",
        "trainer.save_strategy=no",
        f"hydra.run.dir={run_dir}",
        *extra,
        env={**dict.fromkeys((threads.COUNT_ENV, *threads.WAIT_ENV)), **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def test_a_train_run_forces_its_count_and_sets_the_wait_policy(dm_tokenized, tiny_llama, tmp_path):
    manifest = train_script(tmp_path, dm_tokenized, tiny_llama, ["threads=1"], {"OMP_NUM_THREADS": "2"})
    recorded = manifest["threads"]
    assert recorded["count"] == 1 and recorded["source"] == "threads=1" and manifest["config"]["threads"] == "1"
    # set before torch loaded OpenMP: the stage is imported after the threads are applied
    assert recorded["wait_policy"] == "chatclone: GOMP_SPINCOUNT=10000"
    assert recorded["openmp"] in (*threads.OPENMP_LIBRARIES, None)


def test_a_train_run_keeps_the_users_environment(dm_tokenized, tiny_llama, tmp_path):
    manifest = train_script(
        tmp_path, dm_tokenized, tiny_llama, [], {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    )
    recorded = manifest["threads"]
    assert recorded["count"] == 1 and recorded["setting"] == "auto"
    assert recorded["source"].startswith("OMP_NUM_THREADS=1 in the environment")
    assert recorded["wait_policy"] == "environment: OMP_WAIT_POLICY=ACTIVE"


@pytest.mark.parametrize("script, value", [("train", "0"), ("inference", "-1"), ("evaluate_clone", "lots")])
def test_a_bad_value_on_the_command_line_is_one_line_exit_2(script, value, tmp_path):
    result = run_script(script, f"outputs_root={tmp_path}", f"threads={value}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: threads={value}: use auto") and result.stdout == ""
