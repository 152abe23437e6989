"""The blind judging test: items from an evaluate_clone run, votes in SQLite (several writers at once), the report's
rates and Wilson intervals on known votes, the API's errors and access rules, and the page end to end in a real
headless browser (two judges, then judge_report.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from chatclone import runs
from chatclone.config.judging import JudgeReportConfig, JudgingConfig
from chatclone.errors import ChatcloneError
from chatclone.judging.access import judge_links, judge_token, read_secret
from chatclone.judging.pairs import ITEMS, SECRET, VOTES, build_items, load_items, prepare_judging
from chatclone.judging.report import judging_report, report_from_config, verdict
from chatclone.judging.votes import DuplicateVote, read_votes, record_vote
from chatclone.metrics.rates import format_rate
from tests.conftest import ROOT, quiet, run_script

FIXTURE = ROOT / "tests" / "fixtures" / "evaluate_clone_run"  # a real evaluate_clone run (see make_fixture.py)
KEY = "test-api-key"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def sample(real: str, clone: str, context: list[str] | None = None) -> dict:
    return {
        "turn": 0,
        "record": "r",
        "context": context or ["Orrin: hey"],
        "real": real,
        "base": "x",
        "fine_tuned": clone,
    }


def eval_run(tmp_path: Path, rows: list[dict], stage: str = "evaluate_clone") -> Path:
    """An evaluate_clone-shaped finished run dir holding `rows` as samples.jsonl."""
    run = tmp_path / "evaluate_clone" / "run"
    run.mkdir(parents=True)
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    runs.finish_run(run, stage, {}, inputs=[], outputs=["samples.jsonl"], summary={"target": "Tamsin"})
    return run


ROWS = [sample(f"real {i}", f"clone {i}") for i in range(5)] + [sample("same", " same ")]


@pytest.fixture
def judging(tmp_path) -> Path:
    """A judging run of five items (a sixth sample has identical replies)."""
    return prepare_judging(eval_run(tmp_path, ROWS), tmp_path / "judging" / "run", seed=0).dir


def vote_as(judging: Path, judge: str, picks: dict[int, str]) -> None:
    """Vote on each item: "clone" picks the clone's side, "real" the real one's, "cant_tell" can't tell."""
    items = load_items(judging)
    for item, pick in picks.items():
        clone = items[item].clone
        choice = {"clone": clone, "real": "b" if clone == "a" else "a", "cant_tell": "cant_tell"}[pick]
        record_vote(judging / VOTES, judge, item, choice, clone)


# ----- items ------------------------------------------------------------------------------------------------------


def test_items_skip_identical_replies_and_fix_the_sides_by_seed(tmp_path):
    items, skipped = build_items(ROWS, seed=0)
    assert skipped == 1 and [i.id for i in items] == [0, 1, 2, 3, 4]
    for item in items:
        clone, real = (item.a, item.b) if item.clone == "a" else (item.b, item.a)
        assert (clone, real) == (f"clone {item.id}", f"real {item.id}") and item.context == ["Orrin: hey"]
        assert "clone" not in item.public() and set(item.public()) == {"id", "context", "a", "b"}
    assert [i.clone for i in build_items(ROWS, seed=0)[0]] == [i.clone for i in items]
    many = build_items([sample(f"r{i}", f"c{i}") for i in range(40)], seed=3)[0]
    assert {i.clone for i in many} == {"a", "b"}
    assert [i.clone for i in many] != [
        i.clone for i in build_items([sample(f"r{i}", f"c{i}") for i in range(40)], seed=4)[0]
    ]


def test_prepare_judging_writes_the_run_dir_manifest_last(tmp_path):
    run = prepare_judging(FIXTURE, tmp_path / "judging" / "run", seed=0)
    assert run.target == "Tamsin" and run.items == 4 and run.skipped_identical == 0
    manifest = runs.read_manifest(run.dir)
    assert manifest["stage"] == "judging" and manifest["inputs"] == [str(FIXTURE)]
    assert manifest["summary"]["items"] == 4 and manifest["config"] == {"seed": 0}
    for name in (ITEMS, SECRET, VOTES):
        assert (run.dir / name).stat().st_mtime <= (run.dir / runs.MANIFEST).stat().st_mtime
    assert (run.dir / SECRET).stat().st_mode & 0o077 == 0 and len(read_secret(run.dir)) == 64
    samples = [json.loads(line) for line in (FIXTURE / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    for item in load_items(run.dir).values():
        assert item.context == samples[item.id]["context"]
        assert {item.a, item.b} == {samples[item.id]["real"], samples[item.id]["fine_tuned"]}
    assert read_votes(run.dir / VOTES) == []
    with pytest.raises(ChatcloneError, match="already holds a finished run"):
        prepare_judging(FIXTURE, run.dir, seed=0)


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"real": "a", "fine_tuned": "b", "context": []}', "{not json"], r"samples.jsonl:2: not a JSON line"),
        (['{"real": "a", "context": []}'], r"samples.jsonl:1: a sample needs `real` and `fine_tuned` texts"),
        (['{"real": "a", "fine_tuned": "b", "context": [1]}'], r"samples.jsonl:1: .*a `context` list of texts"),
    ],
)
def test_bad_samples_are_one_line_naming_the_line(tmp_path, lines, message):
    run = eval_run(tmp_path, [])
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ChatcloneError, match=message):
        prepare_judging(run, tmp_path / "judging" / "run", seed=0)
    assert not (tmp_path / "judging").exists()


def test_bad_sources_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ChatcloneError, match="nothing to judge: every one of the 2 samples"):
        prepare_judging(eval_run(tmp_path / "same", [sample("x", "x"), sample("y", "y ")]), tmp_path / "j1", 0)
    with pytest.raises(ChatcloneError, match="this is a train run, expected an evaluate_clone run"):
        prepare_judging(eval_run(tmp_path / "train", ROWS, stage="train"), tmp_path / "j2", 0)
    with pytest.raises(ChatcloneError, match="not a finished chatclone run"):
        prepare_judging(tmp_path, tmp_path / "j3", 0)
    assert not any((tmp_path / name).exists() for name in ("j1", "j2", "j3"))


# ----- votes and the report ---------------------------------------------------------------------------------------


def test_report_of_two_judges_gives_the_exact_rates_and_wilson_intervals(judging):
    vote_as(judging, "ann", {0: "clone", 1: "clone", 2: "real", 3: "cant_tell"})
    vote_as(judging, "bo", {0: "real", 1: "clone", 2: "real", 3: "real", 4: "real"})
    report = judging_report(judging)
    ann, bo, overall = report["judges"]["ann"], report["judges"]["bo"], report["overall"]
    assert (ann["votes"], ann["decided"], ann["cant_tell"]) == (4, 3, 1)
    assert ann["clone_picked"]["rate"] == pytest.approx(2 / 3)
    assert ann["clone_picked"]["ci95"] == pytest.approx([0.2077, 0.9385], abs=1e-4)  # Wilson 95 %, 2 of 3
    assert (bo["votes"], bo["decided"], bo["cant_tell"]) == (5, 5, 0)
    assert bo["clone_picked"]["rate"] == pytest.approx(1 / 5)
    assert bo["clone_picked"]["ci95"] == pytest.approx([0.0362, 0.6245], abs=1e-4)  # 1 of 5
    assert (overall["votes"], overall["decided"], overall["cant_tell"]) == (9, 8, 1)
    assert overall["clone_picked"]["successes"] == 3 and overall["clone_picked"]["n"] == 8
    assert overall["clone_picked"]["ci95"] == pytest.approx([0.1368, 0.6943], abs=1e-4)  # 3 of 8
    assert report["items"] == 5 and report["target"] == "Tamsin"


def test_verdicts_read_the_interval_against_fifty_percent(judging):
    vote_as(judging, "ann", {i: "real" for i in range(5)})
    vote_as(judging, "cy", {0: "cant_tell"})
    report = judging_report(judging)
    assert verdict(report["judges"]["ann"]["clone_picked"]) == "spot the clone"  # 0 of 5: [0, 43 %]
    assert report["judges"]["cy"]["clone_picked"] is None and verdict(None) == "no decided votes yet"
    assert verdict({"rate": 0.9, "ci95": [0.6, 0.98]}) == "fooled: pick the clone"
    assert verdict({"rate": 0.5, "ci95": [0.2, 0.8]}) == "at chance"


def test_a_judge_votes_once_per_item_and_the_first_vote_stands(judging):
    record_vote(judging / VOTES, "ann", 0, "a", "a")
    with pytest.raises(DuplicateVote, match="ann has voted on item 0 already; the first vote stands"):
        record_vote(judging / VOTES, "ann", 0, "cant_tell", "a")
    record_vote(judging / VOTES, "bo", 0, "b", "a")  # another judge may
    votes = read_votes(judging / VOTES)
    assert [(v.judge, v.item, v.choice, v.picked_clone) for v in votes] == [
        ("ann", 0, "a", True),
        ("bo", 0, "b", False),
    ]
    with pytest.raises(ChatcloneError, match="choice must be one of a, b, cant_tell, not 'c'"):
        record_vote(judging / VOTES, "ann", 1, "c", "a")


CONCURRENT_WRITER = """
import sys, threading
from chatclone.judging.votes import record_vote
path, tag = sys.argv[1], sys.argv[2]
def judge(k):
    for item in range(25):
        record_vote(path, f"{tag}-{k}", item, "ab"[item % 2], "a")
threads = [threading.Thread(target=judge, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_concurrent_writers_in_two_processes_lose_nothing(judging):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(judging / VOTES), tag],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p", "q")
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    votes = read_votes(judging / VOTES)
    assert len(votes) == 2 * 4 * 25 and len({(v.judge, v.item) for v in votes}) == 200
    assert sum(v.picked_clone for v in votes) == 8 * 13  # the even items of 0-24 picked side a, the clone


def test_the_same_vote_from_two_threads_at_once_is_stored_once(judging):
    outcomes, start = [], threading.Barrier(8)

    def vote() -> None:
        start.wait()
        try:
            record_vote(judging / VOTES, "ann", 2, "a", "b")
            outcomes.append("stored")
        except DuplicateVote:
            outcomes.append("refused")

    threads = [threading.Thread(target=vote) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["stored"] and len(read_votes(judging / VOTES)) == 1


def test_the_report_changes_no_vote_and_writes_no_file(judging):
    vote_as(judging, "ann", {0: "clone"})
    before = (judging / VOTES).read_bytes()
    report_from_config(JudgeReportConfig(run=str(judging)), quiet())
    assert (judging / VOTES).read_bytes() == before
    # SQLite may add the two companion files it reads a WAL database with (the server has them open anyway)
    assert {p.name for p in judging.iterdir()} <= {ITEMS, SECRET, VOTES, runs.MANIFEST, VOTES + "-wal", VOTES + "-shm"}


def test_judge_report_errors_are_one_line(tmp_path, judging):
    with pytest.raises(ChatcloneError, match="no judging run found: start one with the web server's judging.source"):
        report_from_config(JudgeReportConfig(outputs_root=str(tmp_path / "empty")), quiet())
    with pytest.raises(ChatcloneError, match="this is a evaluate_clone run, expected a judging run"):
        report_from_config(JudgeReportConfig(run=str(FIXTURE)), quiet())
    assert report_from_config(JudgeReportConfig(outputs_root=str(tmp_path)), quiet())["items"] == 5  # latest


def test_judge_report_script_prints_one_line_and_exits_2(tmp_path):
    result = run_script("judge_report", f"run={tmp_path / 'gone'}", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {tmp_path / 'gone'}: no such run dir (expected a finished judging run)\n"


# ----- config -----------------------------------------------------------------------------------------------------


def test_the_judging_yaml_matches_its_schema_and_is_off_by_default():
    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(JudgingConfig), OmegaConf.load(ROOT / "conf" / "judging" / "default.yaml"))
    )
    assert cfg == JudgingConfig() and not cfg.enabled
    report = OmegaConf.load(ROOT / "conf" / "judge_report.yaml")
    assert (report.run, report.outputs_root) == (JudgeReportConfig.run, JudgeReportConfig.outputs_root)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (JudgingConfig(source="latest", run="latest"), "judging.source and judging.run are both set"),
        (JudgingConfig(source="latest", judges=["ann", " ann"]), r"judging.judges: each judge once"),
        (JudgingConfig(source="latest", judges=[""]), "judging.judges: a judge needs a non-empty name"),
        (JudgingConfig(source="latest", judges=["a\nb"]), "judging.judges: .*cannot hold control characters"),
        (JudgingConfig(source="latest", judges=["x" * 41]), "judging.judges: .*at most 40 characters, not 41"),
        (JudgingConfig(judges=["ann"]), "judging.judges is set but judging is off"),
    ],
)
def test_bad_judging_config_is_one_line_naming_the_key(cfg, message):
    with pytest.raises(ChatcloneError, match=message):
        cfg.check()


# ----- the API ----------------------------------------------------------------------------------------------------


def client(judging: Path, host: str = "192.0.2.7", api_key=KEY):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from chatclone.judging.router import judging_router

    app = FastAPI()
    app.include_router(judging_router(judging, api_key=api_key))
    return TestClient(app, client=(host, 50000), raise_server_exceptions=False)


def test_the_api_serves_each_item_once_and_never_says_which_is_the_clone(judging):
    api = client(judging, host="127.0.0.1")
    seen = []
    for step in range(5):
        got = api.get("/judge/api/next", params={"judge": "ann"}).json()
        assert (got["done"], got["total"], got["target"], got["judge"]) == (step, 5, "Tamsin", "ann")
        assert set(got["item"]) == {"id", "context", "a", "b"} and '"clone":' not in json.dumps(got)
        seen.append(got["item"]["id"])
        answer = api.post("/judge/api/vote", json={"judge": "ann", "item": got["item"]["id"], "choice": "a"})
        assert answer.status_code == 200 and answer.json() == {"recorded": True, "done": step + 1, "total": 5}
    assert sorted(seen) == [0, 1, 2, 3, 4]
    nameless = api.get("/judge/api/next")
    assert nameless.status_code == 400 and nameless.json()["error"]["param"] == "judge"
    assert api.get("/judge/api/next", params={"judge": "ann"}).json()["item"] is None
    firsts = {api.get("/judge/api/next", params={"judge": j}).json()["item"]["id"] for j in "bcdefg"}
    assert len(firsts) > 1  # each judge has an order of their own
    page = api.get("/judge")
    assert page.status_code == 200 and "A is the real one" in page.text and "Can't tell" in page.text


@pytest.mark.parametrize(
    "body, status, param, message",
    [
        ({"item": 0, "choice": "a"}, 400, "judge", "a judge needs a non-empty name"),
        ({"judge": "  ", "item": 0, "choice": "a"}, 400, "judge", "a judge needs a non-empty name"),
        ({"judge": "ann", "choice": "a"}, 400, "item", "item must be an item id (an integer), not None"),
        ({"judge": "ann", "item": "0", "choice": "a"}, 400, "item", "not '0'"),
        ({"judge": "ann", "item": True, "choice": "a"}, 400, "item", "not True"),
        ({"judge": "ann", "item": 99, "choice": "a"}, 404, "item", "no item 99 in this judging run"),
        ({"judge": "ann", "item": 5, "choice": "a"}, 404, "item", "no item 5"),  # the identical pair: not an item
        ({"judge": "ann", "item": 0, "choice": "A"}, 400, "choice", "choice must be one of a, b, cant_tell, not 'A'"),
        ({"judge": "ann", "item": 0}, 400, "choice", "not None"),
        ([1, 2], 400, None, "the body must be a JSON object"),
    ],
)
def test_bad_votes_are_json_errors_naming_the_field(judging, body, status, param, message):
    answer = client(judging, host="127.0.0.1").post("/judge/api/vote", json=body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["param"] == param and message in error["message"]
    assert read_votes(judging / VOTES) == []


def test_a_body_that_is_not_json_and_a_second_vote_are_refused(judging):
    api = client(judging, host="127.0.0.1")
    answer = api.post("/judge/api/vote", content=b"choice=a", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "JSON object" in answer.json()["error"]["message"]
    assert api.post("/judge/api/vote", json={"judge": "ann", "item": 1, "choice": "b"}).status_code == 200
    again = api.post("/judge/api/vote", json={"judge": "ann", "item": 1, "choice": "a"})
    assert again.status_code == 409 and again.json()["error"]["param"] == "item"
    assert [v.choice for v in read_votes(judging / VOTES)] == ["b"]


def test_a_broken_votes_file_under_the_server_is_a_json_error_not_a_traceback(judging):
    api = client(judging, host="127.0.0.1")
    (judging / VOTES).write_bytes(b"not a database" * 100)
    answer = api.post("/judge/api/vote", json={"judge": "ann", "item": 0, "choice": "a"})
    assert answer.status_code == 503 and "the votes database cannot be used now" in answer.json()["error"]["message"]
    (judging / VOTES).unlink()
    answer = api.get("/judge/api/next", params={"judge": "ann"})
    assert answer.status_code == 500 and "no votes database" in answer.json()["error"]["message"]


def test_off_loopback_a_judge_needs_their_token_or_the_api_key(judging):
    api, secret = client(judging), read_secret(judging)
    ann = {"judge": "ann", "token": judge_token(secret, "ann")}
    denied = api.get("/judge/api/next", params={"judge": "ann"})
    assert denied.status_code == 401 and denied.json()["error"]["param"] == "token"
    assert api.get("/judge").status_code == 401
    assert api.get("/judge", params=ann).status_code == 200
    assert api.get("/judge/api/next", params=ann).status_code == 200
    assert api.get("/judge/api/next", params={**ann, "judge": "bo"}).status_code == 401  # ann's token, as bo
    assert api.post("/judge/api/vote", json={**ann, "item": 0, "choice": "a"}).status_code == 200
    assert (
        api.post("/judge/api/vote", json={"judge": "bo", "token": "0" * 32, "item": 0, "choice": "a"}).status_code
        == 401
    )
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert api.get("/judge/api/next", params={"judge": "bo"}, headers=bearer).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert api.get("/judge/api/next", params={"judge": "bo"}, headers=wrong).status_code == 401
    custom = client(judging, api_key=lambda request: request.headers.get("x-key") == "k")  # the server's check
    assert custom.get("/judge/api/next", params={"judge": "bo"}, headers={"x-key": "k"}).status_code == 200

    def refuses(request):  # a check that raises instead of answering false: a judge's token still lets them in
        raise PermissionError("no key")

    assert client(judging, api_key=refuses).get("/judge/api/next", params=ann).status_code == 200
    assert client(judging, api_key=refuses).get("/judge/api/next", params={"judge": "ann"}).status_code == 401
    assert (
        client(judging, api_key=None).get("/judge/api/next", params={"judge": "bo"}, headers=bearer).status_code == 401
    )
    assert [(v.judge, v.item) for v in read_votes(judging / VOTES)] == [("ann", 0)]


def test_mount_judging_prepares_a_run_from_latest_and_prints_the_links(tmp_path):
    from fastapi import FastAPI

    from chatclone.judging.router import mount_judging

    root = tmp_path / "outputs"
    shutil.copytree(FIXTURE, root / "evaluate_clone" / "run")
    lines, app = [], FastAPI()
    assert mount_judging(app, JudgingConfig(), root, "http://x") is None and not (root / "judging").exists()
    session = mount_judging(
        app, JudgingConfig(source="latest", judges=["ann", "bo b"]), root, "http://192.0.2.2:8000/", out=lines.append
    )
    assert session.dir.parent == root / "judging" and session.items == 4
    assert session.links == judge_links(session.dir, ["ann", "bo b"], "http://192.0.2.2:8000")
    assert lines[0].startswith("judging page: http://192.0.2.2:8000/judge (4 items of Tamsin's")
    token = judge_token(read_secret(session.dir), "bo b")
    assert lines[2] == f"  bo b: http://192.0.2.2:8000/judge?judge=bo+b&token={token}"
    again = mount_judging(FastAPI(), JudgingConfig(run="latest"), root, "http://x", out=lines.append)
    assert again.dir == session.dir and again.links == {}
    with pytest.raises(ChatcloneError, match="no finished evaluate_clone run found"):
        mount_judging(FastAPI(), JudgingConfig(source="latest"), tmp_path / "nothing", "http://x")


# ----- end to end in a real browser -------------------------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def lan_address() -> str | None:
    """This machine's non-loopback IPv4 address (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"no headless browser: {CHROMIUM} and {CHROMEDRIVER} are needed (Debian chromium, chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=420,900"):
        options.add_argument(flag)  # a phone-sized window
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def judge_in_browser(driver, url: str, picks: list[str], items: dict, name: str | None = None) -> list[str]:
    """Open `url`, type `name` when the page asks for one, and vote on every item: picks[k] ("clone", "real",
    "cant_tell") for the k-th item shown. The progress lines seen, in order."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)
    driver.get(url)
    if name is not None:
        wait.until(shown.visibility_of_element_located((By.ID, "name"))).send_keys(name)
        driver.find_element(By.ID, "start").click()
    progress = []
    for k, pick in enumerate(picks):
        wait.until(shown.text_to_be_present_in_element((By.ID, "progress"), f"{k} of {len(items)} judged"))
        wait.until(shown.element_to_be_clickable((By.ID, "vote-a")))
        progress.append(driver.find_element(By.ID, "progress").text)
        a, b = (driver.find_element(By.ID, f"reply-{s}").get_attribute("textContent") for s in "ab")
        item = next(i for i in items.values() if (i.a, i.b) == (a, b))
        context = [p.get_attribute("textContent") for p in driver.find_elements(By.CSS_SELECTOR, "#context .msg")]
        assert context == (item.context or ["(this reply opens the conversation)"])
        assert '"clone":' not in driver.execute_script("return JSON.stringify(current)")
        side = {"clone": item.clone, "real": "b" if item.clone == "a" else "a", "cant_tell": "cant-tell"}[pick]
        driver.find_element(By.ID, f"vote-{side}").click()
    wait.until(shown.visibility_of_element_located((By.ID, "done-text")))
    assert driver.find_element(By.ID, "done-text").text.startswith(f"All {len(items)} judged.")
    return progress


def read_lines(process: subprocess.Popen, count: int, timeout: float = 60) -> list[str]:
    """The next `count` lines of a process's stdout; fewer when it closes or `timeout` passes first."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout.readline() for _ in range(count)), daemon=True)
    reader.start()
    reader.join(timeout)
    return list(lines)


def test_two_judges_vote_through_the_page_and_the_report_shows_both(tmp_path, browser):
    import httpx

    judging = prepare_judging(FIXTURE, tmp_path / "outputs" / "judging" / "run", seed=0).dir
    items = load_items(judging)
    lan = lan_address()
    port = free_port(lan or "127.0.0.1")
    addresses = [f"127.0.0.1:{port}"] + ([f"{lan}:{port}"] if lan else [])
    base = f"http://{lan or '127.0.0.1'}:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.judging_server", str(judging), base, KEY, "ann,bo", *addresses],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = read_lines(server, 4)  # the page line, two links, "serving"
        assert printed[-1] == "serving\n", (printed, server.stderr.read() if server.poll() is not None else "")
        links = dict(line.strip().split(": ", 1) for line in printed[1:3])
        assert links == judge_links(judging, ["ann", "bo"], base)
        if lan:  # off loopback: no token, no page; the API key or the link lets a judge in
            assert httpx.get(f"{base}/judge/api/next", params={"judge": "bo"}).status_code == 401
            assert (
                httpx.get(
                    f"{base}/judge/api/next", params={"judge": "bo"}, headers={"Authorization": f"Bearer {KEY}"}
                ).status_code
                == 200
            )
        # ann on loopback types her name; bo opens his personal link (off loopback when this machine has a LAN
        # address: the token is what lets him in)
        seen = judge_in_browser(
            browser, f"http://127.0.0.1:{port}/judge", ["clone", "clone", "real", "cant_tell"], items, name="ann"
        )
        assert seen == [f"{k} of 4 judged" for k in range(4)]
        judge_in_browser(browser, links["bo"], ["real", "real", "clone", "real"], items)
        report = run_script("judge_report", f"run={judging}", timeout=60)
        assert server.poll() is None  # the report reads while the server is still serving
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert report.returncode == 0, report.stderr
    votes = read_votes(judging / VOTES)
    assert Counter((v.judge, v.picked_clone) for v in votes) == Counter(
        [
            ("ann", True),
            ("ann", True),
            ("ann", False),
            ("ann", None),
            ("bo", False),
            ("bo", False),
            ("bo", True),
            ("bo", False),
        ]
    )
    result = judging_report(judging)
    ann, bo, overall = (
        result["judges"]["ann"]["clone_picked"],
        result["judges"]["bo"]["clone_picked"],
        result["overall"]["clone_picked"],
    )
    assert (ann["successes"], ann["n"], bo["successes"], bo["n"], overall["successes"], overall["n"]) == (
        2,
        3,
        1,
        4,
        3,
        7,
    )
    assert overall["ci95"] == pytest.approx([0.1582, 0.7495], abs=1e-4)  # Wilson 95 %, 3 of 7
    rows = {line.split("│")[1].strip(): line for line in report.stdout.splitlines() if line.count("│") > 3}
    assert format_rate(ann) in rows["ann"] and format_rate(bo) in rows["bo"]
    assert format_rate(overall) == "42.9% [16-75%] n=7" and format_rate(overall) in rows["all judges"]
    assert "at chance" in rows["all judges"] and "50 % = the judges" in report.stdout
