"""`free_cores`: the cores `threads=auto` leaves to the process's other threads (serve.py keeps one for its event loop
and scheduler), what it does not change (an explicit count, the user's OMP_NUM_THREADS), its bad values, and a real
script run recording it. Like tests/test_threads.py, nothing depends on the machine's cores or load."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from chatclone import threads
from chatclone.config.threads import parse_free_cores
from chatclone.errors import ChatcloneError
from tests.conftest import compose, run_script
from tests.test_threads import MODEL_SCRIPTS, not_measured, train_script


@pytest.mark.parametrize(
    "cores, busy, free, expected",
    [
        (2, 0.0, 0, 2),
        (2, 0.0, 1, 1),  # serve.py on an idle 2-core machine: torch on one, the event loop on the other
        (2, 1.0, 1, 1),  # at least 1, however much is kept free
        (16, 3.2, 1, 12),
        (4, 0.0, 9, 1),
    ],
)
def test_auto_leaves_the_free_cores(cores, busy, free, expected):
    assert threads.auto_threads(cores, busy, free) == expected


def test_auto_says_what_it_left_free():
    decision = threads.decide("auto", {}, 4, lambda: 0.1, 1)
    assert decision["count"] == 3
    assert (
        decision["source"]
        == "auto: 4 usable core(s), 0.10 kept busy by other processes, 1 left to this process's other threads"
    )


def test_an_explicit_count_and_the_users_omp_num_threads_still_win():
    assert threads.decide("2", {}, 2, not_measured, 1)["count"] == 2
    assert threads.decide("auto", {"OMP_NUM_THREADS": "2"}, 2, not_measured, 1)["count"] is None


def test_serve_keeps_one_core_free_and_the_other_model_scripts_none():
    assert compose("serve").free_cores == 1
    assert {script: compose(script).free_cores for script in MODEL_SCRIPTS if script != "serve"} == dict.fromkeys(
        [s for s in MODEL_SCRIPTS if s != "serve"], 0
    )
    with pytest.raises(ConfigCompositionException):
        compose("process_messages", ["free_cores=1"])


@pytest.mark.parametrize("value", ["-1", "lots", "1.5", ""])
def test_bad_values_are_one_line_naming_the_key(value):
    with pytest.raises(ChatcloneError) as error:
        parse_free_cores(value)
    assert str(error.value).startswith(f"free_cores={value}: use a whole number >= 0") and "\n" not in str(error.value)


def test_a_negative_value_on_the_command_line_is_one_line_exit_2(tmp_path):
    result = run_script("serve", "free_cores=-1", f"outputs_root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: free_cores=-1: use a whole number >= 0") and result.stdout == ""


def test_a_train_run_records_the_cores_it_left_free(dm_tokenized, tiny_llama, tmp_path):
    # more cores kept free than any machine has: torch gets 1 thread, whatever the machine
    manifest = train_script(tmp_path, dm_tokenized, tiny_llama, ["free_cores=64"], {})
    recorded = manifest["threads"]
    assert recorded["count"] == 1 and manifest["config"]["free_cores"] == 64
    assert recorded["source"].endswith(", 64 left to this process's other threads")
