"""A run killed with SIGKILL mid-way resumes: every sample done exactly once, no duplicate rows."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from tis.pipeline.evaluate import rejudge
from tis.testing import LoopbackServer


def test_killed_run_resumes_where_it_stopped(tmp_path):
    data = tmp_path / "set.jsonl"
    prompts = [f"resume prompt {i} [[think-tags]]" for i in range(30)]
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "images": [], "category": f"c{i % 3}"}) + "\n"
                            for i, p in enumerate(prompts)))
    db = tmp_path / "runs/killed/tis.sqlite"
    with LoopbackServer(latency_s=0.1) as srv:
        argv = [sys.executable, "-m", "tis.cli", "eval", "--model", "openai:loopback", "--base-url", srv.base_url,
                "--benchmark", "custom", "--data", str(data), "--out", str(tmp_path / "runs"), "--name", "killed",
                "--concurrency", "2", "--no-progress", "--judge", "refusal"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        stored_before: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(stored_before) < 8:
            time.sleep(0.05)
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        stored_before = {r[0] for r in con.execute("SELECT sample_id FROM generations")}
                except sqlite3.OperationalError:
                    pass  # the schema is being created
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(db) as con:
            stored_before = {r[0] for r in con.execute("SELECT sample_id FROM generations WHERE status='ok'")}
        assert 8 <= len(stored_before) < 30, "the run was not killed mid-way"
        assert not (tmp_path / "runs/killed/results.jsonl").exists()

        # the killed run is re-judgeable from its store (its lock went with it), with no model call
        calls = srv.requests.total
        rejudged = rejudge(tmp_path / "runs/killed", ["refusal"], progress=False)
        assert srv.requests.total == calls and rejudged.stats["model_calls"] == 0
        lines = (tmp_path / "runs/killed/results.jsonl").read_text().splitlines()
        assert {json.loads(line)["sample_id"] for line in lines} == stored_before

        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr

        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT sample_id, sample_index FROM generations").fetchall()
            verdict_rows = con.execute("SELECT generation_key, judge, target FROM verdicts").fetchall()
        assert sorted(rows) == sorted((f"q{i}", 0) for i in range(30))  # each sample exactly once
        assert len(verdict_rows) == len(set(verdict_rows)) == 60  # thought + answer, once each
        # what was stored before the kill was not asked again
        for sid in stored_before:
            assert srv.requests[prompts[int(sid[1:])]] == 1, sid
        lines = (tmp_path / "runs/killed/results.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["sample_id"] for line in lines) == sorted(f"q{i}" for i in range(30))
