"""Tiny clones to serve and a real serve.py subprocess on a free loopback port, for tests/test_serve*.py."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import DM, ROOT, compose, make_config, quiet, train_tiny_run

START_TIMEOUT_S = 120


def train_tiny_clone(root: Path, tiny_llama: Path, target: str, name: str) -> Path:
    """process_messages (the bundled DM, `target`), tokenize_dataset and 2 LoRA steps of the tiny Llama, under
    `root`; the train run dir."""
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset

    dm = ROOT / "examples" / "sample_exports" / f"{DM}.json"
    process_messages(make_config([dm], target=target), root / "process_messages" / name, console=quiet())
    tokenize_dataset(
        compose(
            "tokenize_dataset",
            [
                f"input={root / 'process_messages' / name}",
                "progress=false",
                "num_proc=1",
                f"model.name_or_path={tiny_llama}",
            ],
        ),
        root / "tokenize_dataset" / name,
        console=quiet(),
    )
    return train_tiny_run(root, root / "tokenize_dataset" / name, tiny_llama, "eval.sample_contexts=0", name=name)


class Server:
    """`python serve.py port=0 ...` in a subprocess; `url` once it listens (read from its first stdout line)."""

    def __init__(self, run_dir: Path, overrides: list[str], env: dict | None = None):
        self.run_dir = run_dir
        environ = {k: v for k, v in os.environ.items() if k != "CHATCLONE_API_KEY"}
        environ.update({"PYTHONUNBUFFERED": "1", **(env or {})})
        self.process = subprocess.Popen(
            [sys.executable, "serve.py", "port=0", "threads=1", f"hydra.run.dir={run_dir}", *overrides],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.stderr.append), daemon=True).start()
        self.url = self._wait_for_address()

    @staticmethod
    def _read(stream, sink) -> None:
        for line in stream:
            sink(line)

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    time.sleep(0.2)
                    raise RuntimeError("serve.py exited: " + "".join(self.stderr)[-3000:])
                continue
            match = re.search(r"at (http://\S+)/ \(OpenAI API", line)
            if match:
                return match.group(1)
        self.process.kill()
        raise RuntimeError("serve.py did not start in time: " + "".join(self.stderr)[-3000:])

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        time.sleep(0.1)  # the reader threads drain the pipes
        return self.process.returncode
