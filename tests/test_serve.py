"""serve.py: the real server in a subprocess on a free loopback port, two tiny clones (Tamsin and Orrin, trained for 2
steps on the bundled DM), talked to with the official `openai` client and raw HTTP.

The clones' replies are noise; what is checked is the protocol (plain, streamed, n, stop, seed, usage), that the
prompt is inference.py's (the same prompt tokens, the same greedy reply), the speakers of a group chat, and every
refusal: its status, its OpenAI-style error and the field it names.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from chatclone.config.serve import ServeConfig, SystemMessages, is_loopback
from chatclone.errors import ChatcloneError
from chatclone.serving.messages import MessageError, Speakers, to_history
from chatclone.serving.service import model_ids
from tests.conftest import ROOT, run_script
from tests.serving_helpers import Server

KEY = "test-key-5dd1c3"
MARKER = "zebra-marker-9431"  # a message text that must not reach any log or file unless log_conversations=true
HEY = [{"role": "user", "content": "hey, you up?"}]


def _clones(root: Path, *names: str) -> str:
    return "clones=[" + ",".join(str(root / "train" / n) for n in names) + "]"


STARTED: dict[str, Server] = {}


@pytest.fixture(scope="module")
def servers(serve_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Servers started on first use, stopped at the end of the module: main (both clones, batching, the greedy
    sampling group as the requests' defaults, float32: the
    same kernels as inference.py's generate, so a greedy reply is the same to the token; bfloat16 steps round
    differently with and without a padding mask, and a random tiny model is full of near-ties), guarded (a
    non-loopback host with a key, one row, one waiting place, long replies allowed), limited (2 requests a minute,
    log_conversations=true)."""
    runs = tmp_path_factory.mktemp("serve-runs")
    options = {
        "main": (
            [
                f"outputs_root={serve_root}",
                _clones(serve_root, "tamsin", "orrin"),
                "max_batch=4",
                "fast_decode=false",
                "sampling=greedy",
            ],
            {},
        ),
        "guarded": (
            [
                f"outputs_root={serve_root}",
                _clones(serve_root, "tamsin"),
                "host=0.0.0.0",
                "max_batch=1",
                "queue_size=1",
                "limits.max_tokens=900",
            ],
            {"CHATCLONE_API_KEY": KEY},
        ),
        "limited": (
            [
                f"outputs_root={serve_root}",
                _clones(serve_root, "tamsin"),
                "limits.requests_per_minute=2",
                "log_conversations=true",
            ],
            {},
        ),
    }

    def get(name: str) -> Server:
        if name not in STARTED:
            overrides, env = options[name]
            STARTED[name] = Server(runs / name, overrides, env)
        return STARTED[name]

    yield get
    for server in STARTED.values():
        server.stop()
    STARTED.clear()


def client(server: Server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def ask(server: Server, **body) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions", json={"model": "tamsin", "messages": HEY, **body}, timeout=60
    )


# --- the protocol, through the official client --------------------------------------------------------------------


def test_plain_completion_has_usage_and_a_finish_reason(servers):
    reply = client(servers("main")).chat.completions.create(model="tamsin", messages=HEY, max_tokens=8, seed=3)
    [choice] = reply.choices
    assert reply.object == "chat.completion" and reply.model == "tamsin" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.finish_reason in ("stop", "length")
    assert 1 <= reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_the_prompt_and_greedy_reply_are_inference_pys(servers, serve_root, tmp_path):
    """One rendering path: the server's prompt has exactly inference.py's tokens, and its greedy reply is
    inference.py mode=prompt's with sampling=greedy (both float32 on one thread: the same sums in the same order),
    its repetition penalty of 1.1 included: the server's defaults are the same sampling group."""
    result = run_script(
        "inference",
        f"outputs_root={serve_root}",
        "mode=prompt",
        f"run={serve_root / 'train' / 'tamsin'}",
        "prompt=hey, you up?",
        "sampling=greedy",
        "sampling.max_new_tokens=8",
        "threads=1",
        "fast_decode=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    reply = client(servers("main")).chat.completions.create(model="tamsin", messages=HEY, max_tokens=8)
    assert reply.usage.prompt_tokens == row["prompt_tokens"]
    assert reply.choices[0].message.content == row["text"]
    assert reply.usage.completion_tokens == row["tokens"]
    assert reply.choices[0].finish_reason == ("length" if row["stopped"] == "max_new_tokens" else "stop")


def test_streamed_completion_matches_the_plain_one(servers):
    api = client(servers("main"))
    plain = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=8, seed=11, temperature=1.0)
    chunks = list(
        api.chat.completions.create(
            model="tamsin",
            messages=HEY,
            max_tokens=8,
            seed=11,
            temperature=1.0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == plain.choices[0].message.content and finishes == [plain.choices[0].finish_reason]
    assert (
        chunks[0].choices[0].delta.role == "assistant"
        and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    )
    raw = httpx.post(
        servers("main").url + "/v1/chat/completions",
        timeout=60,
        json={"model": "tamsin", "messages": HEY, "max_tokens": 3, "stream": True},
    )
    events = [e for e in raw.text.split("\n\n") if e]
    assert raw.headers["content-type"].startswith("text/event-stream") and events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_n_choices_and_seed_reproducibility(servers):
    api = client(servers("main"))
    first = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=6, n=2, seed=5, temperature=1.2)
    again = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=6, n=2, seed=5, temperature=1.2)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    others = {
        api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=6, seed=s, temperature=1.2)
        .choices[0]
        .message.content
        for s in (6, 7, 8)
    }
    assert len(others | {first.choices[0].message.content}) > 1, "different seeds, different draws"


def test_stop_sequence_ends_the_reply_where_it_starts(servers):
    api = client(servers("main"))
    full = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=12, temperature=0).choices[0]
    words = full.message.content.split()
    assert len(words) >= 3, full.message.content
    stop = words[2][:4]
    cut = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=12, temperature=0, stop=[stop])
    expected = full.message.content[: full.message.content.index(stop)].rstrip()
    assert cut.choices[0].message.content == expected and cut.choices[0].finish_reason == "stop"


def test_group_chat_with_named_users(servers):
    api = client(servers("main"))
    group = [
        {"role": "user", "name": "Pippa", "content": "pub quiz tonight?"},
        {"role": "user", "content": "you in?"},
        {"role": "assistant", "content": "maybe"},
        {"role": "user", "name": "Pippa", "content": "come on"},
    ]
    reply = api.chat.completions.create(model="tamsin", messages=group, max_tokens=6, seed=1)
    assert reply.choices[0].finish_reason in ("stop", "length")
    for line in reply.choices[0].message.content.split("\n"):
        assert not line.lstrip().startswith(("Pippa:", "Orrin:")), reply.choices[0].message.content
    speakers = Speakers("Tamsin", "Orrin", "")
    history = to_history(group, speakers)
    assert [(m["role"], m["name"]) for m in history] == [
        ("user", "Pippa"),
        ("user", "Orrin"),
        ("assistant", "Tamsin"),
        ("user", "Pippa"),
    ]
    shorter = api.chat.completions.create(model="tamsin", messages=group[-1:], max_tokens=1)
    assert reply.usage.prompt_tokens > shorter.usage.prompt_tokens


def test_two_clones_listed_and_answering(servers, serve_root):
    api = client(servers("main"))
    models = {m.id: m for m in api.models.list().data}
    assert set(models) == {"tamsin", "orrin"}
    assert models["orrin"].model_extra["run_dir"] == str(serve_root / "train" / "orrin")
    assert models["tamsin"].model_extra["base_model"] and models["orrin"].model_extra["target"] == "Orrin"
    assert api.models.retrieve("orrin").id == "orrin"
    for name in models:
        assert api.chat.completions.create(model=name, messages=HEY, max_tokens=3).model == name


def test_concurrent_requests_share_a_batch(servers):
    server = servers("main")
    before = httpx.get(server.url + "/health").json()
    results: list[httpx.Response] = []

    def one() -> None:
        results.append(ask(server, max_tokens=40, temperature=1.0))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = httpx.get(server.url + "/health").json()
    assert [r.status_code for r in results] == [200] * 4
    assert after["requests"] - before["requests"] == 4 and after["max_rows"] >= 2
    assert after["batches"] - before["batches"] < 4, "concurrent requests decode together"


# --- bad requests: status, OpenAI-style error, the field named -----------------------------------------------------

BAD = [
    ({"model": "nobody"}, 404, "model", "does not exist"),
    ({"temperature": 3}, 400, "temperature", "temperature=3"),
    ({"top_p": 0}, 400, "top_p", "top_p=0"),
    ({"max_tokens": 100000}, 400, "max_tokens", "at most 256"),
    ({"max_completion_tokens": 100000}, 400, "max_completion_tokens", "at most 256"),
    ({"max_tokens": 0}, 400, "max_tokens", ">= 1"),
    ({"n": 9}, 400, "n", "at most 4"),
    ({"n": 2, "temperature": 0}, 400, "n", "temperature 0"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
    ({"stop": 5}, 400, "stop", "list of strings"),
    ({"messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", "string or a list"),
    ({"n": 2.0}, 400, "n", "whole number"),
    ({"messages": []}, 400, "messages", "non-empty"),
    ({"messages": [{"role": "user", "content": "hi"}] * 201}, 400, "messages", "at most 200"),
    ({"messages": [{"role": "user", "content": "x" * 4001}]}, 400, "messages[0].content", "at most 4000"),
    ({"messages": [{"role": "tool", "content": "hi"}]}, 400, "messages[0].role", "'tool'"),
    ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages[0].content", "empty"),
    ({"messages": [{"role": "user", "name": "Tamsin", "content": "hi"}]}, 400, "messages[0].name", "own name"),
    ({"messages": [{"role": "user", "name": "a:b", "content": "hi"}]}, 400, "messages[0].name", "speaker name"),
    (
        {"messages": [{"role": "system", "content": "You are a helpful assistant."}, *HEY]},
        400,
        "messages[0].content",
        "trained with",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        400,
        "messages[0].content[0]",
        "only text",
    ),
    ({"messages": "hey"}, 400, "messages", "non-empty list"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools", "not supported"),
    ({"frequency_penalty": 0.5}, 400, "frequency_penalty", "not supported"),
    ({"stream": "yes"}, 400, "stream", "true or false"),
    ({"seed": "x"}, 400, "seed", "whole number"),
]


@pytest.mark.parametrize("change, status, param, words", BAD, ids=[f"{b[2]}-{b[1]}" for b in BAD])
def test_bad_request_is_an_openai_error_naming_the_field(servers, change, status, param, words):
    response = ask(servers("main"), **{"max_tokens": 2, **change})
    error = response.json()["error"]
    assert response.status_code == status, response.text
    assert error["param"] == param and words in error["message"], error
    assert set(error) == {"message", "type", "param", "code"} and "Traceback" not in response.text


def test_bad_requests_through_the_openai_client(servers):
    api = client(servers("main"))
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        api.chat.completions.create(model="nobody", messages=HEY)
    with pytest.raises(openai.BadRequestError, match="max_tokens") as caught:
        api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=10**6)
    assert caught.value.status_code == 400 and caught.value.param == "max_tokens"


def test_the_training_system_prompt_is_accepted(servers):
    api = client(servers("main"))
    system = next(m for m in api.models.list().data if m.id == "tamsin").model_extra["system_prompt"]
    with_it = api.chat.completions.create(
        model="tamsin", messages=[{"role": "system", "content": system}, *HEY], max_tokens=1
    )
    without = api.chat.completions.create(model="tamsin", messages=HEY, max_tokens=1)
    assert with_it.usage.prompt_tokens == without.usage.prompt_tokens


def test_body_that_is_too_large_or_not_json(servers):
    url = servers("main").url + "/v1/chat/completions"
    big = json.dumps({"model": "tamsin", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    declared = httpx.post(url, content=big, headers={"Content-Type": "application/json"}, timeout=60)
    streamed = httpx.post(url, content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]), timeout=60)
    for response in (declared, streamed):
        assert response.status_code == 413 and "limits.max_body_bytes" in response.json()["error"]["message"]
    assert "Content-Length" not in streamed.request.headers
    broken = httpx.post(url, content=b"{not json", timeout=60)
    assert broken.status_code == 400 and broken.json()["error"]["param"] == "body"
    unknown = httpx.get(servers("main").url + "/v1/nothing-here", timeout=60)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_disconnected_client_stops_its_generation(servers):
    server = servers("guarded")
    headers = {"Authorization": f"Bearer {KEY}"}
    before = httpx.get(server.url + "/health").json()["cancelled"]
    body = {
        "model": "tamsin",
        "messages": HEY,
        "max_tokens": 450,
        "stream": True,
    }  # within the tiny clone's 512 positions
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 90  # a busy machine: an earlier test's long reply may still hold the one row
    while httpx.get(server.url + "/health").json()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    health = httpx.get(server.url + "/health").json()
    assert health["cancelled"] == before + 1 and health["running"] == 0


# --- keys, the queue, the rate limit ---------------------------------------------------------------------------------


def test_a_non_loopback_host_needs_a_key(servers):
    server = servers("guarded")
    for key in ("", "wrong"):
        response = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"} if key else {})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong").chat.completions.create(model="tamsin", messages=HEY, max_tokens=1)
    reply = client(server, KEY).chat.completions.create(model="tamsin", messages=HEY, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_serve_refuses_a_non_loopback_host_without_a_key(serve_root, tmp_path):
    result = run_script(
        "serve",
        f"outputs_root={serve_root}",
        "host=0.0.0.0",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"CHATCLONE_API_KEY": None},
    )
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: host=0.0.0.0 is not a loopback")
    assert "CHATCLONE_API_KEY" in result.stderr


def test_full_queue_answers_503_with_retry_after(servers):
    server = servers("guarded")
    headers = {"Authorization": f"Bearer {KEY}"}
    barrier, results = threading.Barrier(6), []

    def one() -> None:
        barrier.wait()
        results.append(
            httpx.post(
                server.url + "/v1/chat/completions",
                headers=headers,
                timeout=60,
                json={"model": "tamsin", "messages": HEY, "max_tokens": 300},
            )
        )

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy = [r for r in results if r.status_code == 503]
    assert {r.status_code for r in results} <= {200, 503} and 1 <= len(busy) <= 4, [r.status_code for r in results]
    assert all(r.headers["Retry-After"] == "2" and r.json()["error"]["code"] == "server_busy" for r in busy)


def test_rate_limit_answers_429_and_conversations_are_logged_when_asked(servers):
    server = servers("limited")
    first = [ask(server, max_tokens=1, messages=[{"role": "user", "content": MARKER}]) for _ in range(2)]
    third = ask(server, max_tokens=1)
    assert [r.status_code for r in first] == [200, 200] and third.status_code == 429
    assert int(third.headers["Retry-After"]) >= 1 and third.json()["error"]["code"] == "rate_limit_exceeded"
    assert server.stop() == 0
    logged = (server.run_dir / "conversations.jsonl").read_text(encoding="utf-8")
    assert logged.count(MARKER) == 2


def test_no_chat_text_or_key_in_logs_or_run_dirs(servers):
    """Last: stops every server (Ctrl-C) and reads all it wrote."""
    main, guarded = servers("main"), servers("guarded")
    assert ask(main, max_tokens=1, messages=[{"role": "user", "content": MARKER}]).status_code == 200
    for server in (main, guarded):
        assert server.stop() == 0
        manifest = json.loads((server.run_dir / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["stage"] == "serve" and manifest["summary"]["requests"] >= 1
        written = "".join(p.read_text(encoding="utf-8") for p in server.run_dir.rglob("*") if p.is_file())
        assert MARKER not in written and KEY not in written and MARKER not in "".join(server.stderr)
        assert not (server.run_dir / "conversations.jsonl").exists()
    assert "serve.log" in {p.name for p in main.run_dir.iterdir()} and "POST /v1/chat/completions" in (
        main.run_dir / "serve.log"
    ).read_text(encoding="utf-8")


# --- pure pieces ----------------------------------------------------------------------------------------------------


def test_model_ids_are_named_after_targets():
    assert model_ids(["Tamsin", "Orrin", "Tamsin", "Mossy Wren", "?"]) == [
        "tamsin",
        "orrin",
        "tamsin-2",
        "mossy-wren",
        "clone",
    ]


def test_conversion_of_messages():
    speakers = Speakers("Tamsin", "Orrin", "You are Tamsin.")
    history = to_history(
        [
            {"role": "system", "content": "You are Tamsin."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "yo"}]},
            {"role": "assistant", "content": "hey"},
        ],
        speakers,
    )
    assert history == [
        {"role": "user", "name": "Orrin", "content": "hi\nyo"},
        {"role": "assistant", "name": "Tamsin", "content": "hey"},
    ]
    with pytest.raises(MessageError, match="at least one user"):
        to_history([{"role": "system", "content": "You are Tamsin."}], speakers)
    ignoring = Speakers("Tamsin", "Orrin", "You are Tamsin.", SystemMessages.ignore)
    assert to_history([{"role": "system", "content": "be an assistant"}, *HEY], ignoring) == [
        {"role": "user", "name": "Orrin", "content": "hey, you up?"}
    ]


@pytest.mark.parametrize(
    "change, words",
    [
        ({"host": "0.0.0.0"}, "CHATCLONE_API_KEY"),
        ({"clones": []}, "clones"),
        ({"max_batch": 0}, "max_batch"),
        ({"port": 70000}, "port"),
        ({"user_name": "a:b"}, "user_name"),
        ({"dtype": "int3"}, "dtype"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(change, words, monkeypatch):
    monkeypatch.delenv("CHATCLONE_API_KEY", raising=False)
    cfg = ServeConfig(**change)
    with pytest.raises(ChatcloneError, match=words):
        cfg.check()


def test_loopback_hosts():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.com"))


# --- the batch itself, in process -----------------------------------------------------------------------------------


def test_a_row_decodes_alike_alone_in_a_padded_batch_and_joining_mid_flight(serve_root):
    """Left padding, the attention mask, per-row positions, dropping finished rows and merging a prefilled newcomer
    into a running batch change nothing a row computes: its greedy and its seeded sampled tokens are the same."""
    import torch

    from chatclone.config.generation import CloneStageConfig
    from chatclone.generation.clone import load_clone, locate
    from chatclone.serving.engine import Batch, Job, Settings

    cfg = CloneStageConfig(run=str(serve_root / "train" / "tamsin"), outputs_root=str(serve_root), fast_decode=False)
    clone = load_clone(locate(cfg), cfg)
    texts = ["hey", "what are you up to tonight? i was thinking we could get food after", "yo"]
    prompts = [clone.prompts.fit([clone.prompts.message("Orrin", t)], "Tamsin", 400)[0] for t in texts]
    settings = [
        Settings(0.0, 1.0, 0, 1.0, 12, None),
        Settings(1.0, 0.9, 0, 1.1, 12, 7),
        Settings(0.8, 1.0, 40, 1.0, 5, 3),
    ]  # greedy, nucleus + penalty, top-k and a shorter budget

    def decode(indices: list[int], join_at: int | None = None) -> dict[int, list[int]]:
        batch, rows = Batch(clone, threading.Lock()), {}
        jobs = {i: Job("t", prompts[i], 1, settings[i], ["Tamsin", "Orrin"], (), lambda e: None) for i in indices}
        first = indices if join_at is None else indices[:1]
        batch.add([jobs[i] for i in first])
        rows.update({i: r for i, r in zip(first, batch.rows)})
        steps = 0
        while batch.rows:
            if steps == join_at:
                batch.add([jobs[i] for i in indices[1:]])
                rows.update({i: r for i, r in zip(indices[1:], batch.rows[-(len(indices) - 1) :])})
            batch.step()
            steps += 1
        return {i: row.ids for i, row in rows.items()}

    torch.manual_seed(0)
    alone = {i: decode([i])[i] for i in range(3)}
    assert decode([0, 1, 2]) == alone
    assert decode([1, 0, 2], join_at=3) == alone
    assert len(alone[2]) <= 5 and len(alone[0]) <= 12


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--clients", "0"], "argument --clients: must be a whole number >= 1, got '0'"),
        (["--contenders", "fast"], "argument --contenders: invalid choice: 'fast'"),
    ],
)
def test_bench_serve_refuses_bad_flags(flags, message):
    result = run_script("benchmarks/bench_serve", *flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]


def test_an_api_key_on_the_command_line_never_reaches_the_run_dir(tmp_path):
    result = run_script(
        "serve",
        "host=0.0.0.0",
        "api_key=cmdline-secret-77",
        f"clones=[{tmp_path / 'no-such-run'}]",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2 and result.stderr.startswith("error: clones[0]="), result.stderr
    record = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "run" / ".hydra").iterdir())
    assert "api_key=<redacted>" in record and "api_key: <redacted>" in record
    assert "cmdline-secret-77" not in record and "cmdline-secret-77" not in result.stderr


def test_the_judging_page_mounts_on_the_server_with_personal_links(serve_root: Path, tmp_path: Path):
    """serve.py judging.source=<evaluate_clone run>: /judge is served beside the chat API, a personal link is
    printed for each judge, and a vote through the page's API reaches the judging run's database."""
    from chatclone.judging.report import judging_report

    source = ROOT / "tests" / "fixtures" / "evaluate_clone_run"
    server = Server(
        tmp_path / "run",
        [f"outputs_root={tmp_path}", _clones(serve_root, "tamsin"), f"judging.source={source}", "judging.judges=[ann]"],
    )
    try:
        deadline = time.monotonic() + 30
        lines = []
        while not any(" ann: " in line for line in lines) and time.monotonic() < deadline:
            lines.append(server.lines.get(timeout=30))
        assert any(line.startswith("judging page: " + server.url + "/judge") for line in lines), lines
        link = next(line.split(" ann: ", 1)[1].strip() for line in lines if " ann: " in line)
        assert link.startswith(server.url + "/judge?judge=ann&token=")
        page = httpx.get(link, timeout=30)
        assert page.status_code == 200 and "A is the real one" in page.text
        item = httpx.get(server.url + "/judge/api/next", params={"judge": "ann"}, timeout=30).json()["item"]
        vote = httpx.post(
            server.url + "/judge/api/vote", json={"judge": "ann", "item": item["id"], "choice": "a"}, timeout=30
        )
        assert vote.status_code == 200 and vote.json()["recorded"] is True
        assert ask(server, max_tokens=2).status_code == 200  # the chat API is still there
    finally:
        server.stop()
    judging_dir = next((tmp_path / "judging").iterdir())
    assert judging_report(judging_dir)["overall"]["decided"] == 1
