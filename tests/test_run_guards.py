"""Runs that cannot silently lie: a locked run directory, --name reuse, a raised --limit, a dead server."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

import tis
from tis.core.errors import ConfigError
from tis.pipeline.store import LOCK_NAME
from tis.testing import LoopbackServer


def write_set(path, n, extra=""):
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"guard prompt {i}{extra}", "images": []}) + "\n"
                            for i in range(n)))
    return path


def cli(srv_url, data, out, *extra):
    return [sys.executable, "-m", "tis.cli", "eval", "--model", "openai:loopback", "--base-url", srv_url,
            "--benchmark", "custom", "--data", str(data), "--out", str(out), "--no-progress", "--no-report",
            "--judge", "refusal", *extra]


def test_a_second_process_on_a_locked_run_directory_stops_at_once_naming_the_holder(tmp_path):
    data = write_set(tmp_path / "set.jsonl", 6)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with LoopbackServer(latency_s=1.0) as srv:  # the first run takes 6 s: long enough to start a second
        argv = cli(srv.base_url, data, tmp_path / "runs", "--name", "shared", "--concurrency", "1")
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        lock = tmp_path / "runs" / "shared" / LOCK_NAME
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.05)
        holder = json.loads(lock.read_text())
        assert holder["pid"] == first.pid
        t0 = time.monotonic()
        second = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert first.poll() is None, "the first run ended before the second one started"
        assert second.returncode == 2
        assert f"in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert time.monotonic() - t0 < 30
        assert first.wait(timeout=120) == 0, first.stderr.read()
        assert srv.requests.total == 6  # only the holder paid for the samples
        with sqlite3.connect(tmp_path / "runs" / "shared" / "tis.sqlite") as con:
            assert con.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 12  # thought + answer, once each
        # the lock went with its holder: the same command runs again (and finds everything done)
        again = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert again.returncode == 0, again.stderr
        assert srv.requests.total == 6


def test_a_name_reused_for_another_model_or_benchmark_is_refused_unless_forced(tmp_path):
    data = write_set(tmp_path / "set.jsonl", 3)
    other_data = write_set(tmp_path / "other.jsonl", 3, extra=" (other)")
    with LoopbackServer(model_ids=("loopback", "other-model")) as srv:
        common = dict(base_url=[srv.base_url], benchmark="custom", judges=["refusal"], out=str(tmp_path / "runs"),
                      name="mine", progress=False, report=False)
        first = tis.evaluate(model="openai:loopback", data=str(data), **common)
        summary = (first.run_dir / "summary.json").read_text()
        with pytest.raises(ConfigError, match=r"holds a run of openai:loopback on custom; this run has another model\b"):
            tis.evaluate(model="openai:other-model", data=str(data), **common)
        with pytest.raises(ConfigError, match="another benchmark.*--force"):
            tis.evaluate(model="openai:loopback", data=str(other_data), **common)
        with pytest.raises(ConfigError, match="another generation settings"):
            tis.evaluate(model="openai:loopback", data=str(data), temperature=0.7, **common)
        assert (first.run_dir / "summary.json").read_text() == summary  # nothing of the first run was touched
        calls = srv.requests.total
        tis.evaluate(model="openai:loopback", data=str(data), limit=2, **common)  # same settings, fewer samples
        assert srv.requests.total == calls
        forced = tis.evaluate(model="openai:other-model", data=str(data), force=True, **common)
        assert forced.stats["generated"] == 3
        assert json.loads((first.run_dir / "manifest.json").read_text())["model"]["spec"] == "openai:other-model"


def test_raising_the_limit_pays_only_for_the_new_samples(tmp_path):
    data = write_set(tmp_path / "set.jsonl", 10)
    with LoopbackServer() as srv:
        common = dict(model="openai:loopback", base_url=[srv.base_url], benchmark="custom", data=str(data),
                      judges=["refusal"], out=str(tmp_path / "runs"), progress=False, report=False)
        pilot = tis.evaluate(limit=5, **common)
        assert srv.requests.total == 5
        more = tis.evaluate(limit=6, **common)
        assert more.run_dir == pilot.run_dir
        assert srv.requests.total == 6
        assert (more.stats["generated"], more.stats["generations_reused"]) == (1, 5)
        rows = (more.run_dir / "results.jsonl").read_text().splitlines()
        assert len(rows) == 6
        full = tis.evaluate(**common)
        assert full.run_dir == pilot.run_dir and srv.requests.total == 10


def test_a_server_that_dies_mid_run_stops_the_run_early_and_the_same_command_resumes(tmp_path):
    n = 200
    data = write_set(tmp_path / "set.jsonl", n)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    srv = LoopbackServer(latency_s=0.05).start()
    port = srv.port
    argv = cli(srv.base_url, data, tmp_path / "runs", "--name", "dies", "--concurrency", "2",
               "--max-connection-failures", "4", "--backoff-s", "0.5")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and srv.requests.total < 10:
        time.sleep(0.02)
    srv.stop()
    killed_at = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - killed_at
    assert proc.returncode == 2, stderr
    assert "could not reach the server" in stderr and "re-run the same command" in stderr
    assert "Traceback" not in stderr
    # not every remaining sample through its whole backoff (that took minutes); the margin is for a busy CI
    assert stopped_after < 15, (stopped_after, stderr)
    db = tmp_path / "runs" / "dies" / "tis.sqlite"
    with sqlite3.connect(db) as con:
        done = con.execute("SELECT COUNT(*) FROM generations WHERE status='ok'").fetchone()[0]
    assert 10 <= done < n
    rows = (tmp_path / "runs" / "dies" / "results.jsonl").read_text().splitlines()
    assert len(rows) == done  # what finished is written out; the rest is left for the resume
    with LoopbackServer(port=port) as again:
        resumed = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert again.requests.total == n - done, resumed.stderr  # only what was not stored


def test_a_name_reused_with_another_system_prompt_is_refused(tmp_path):
    data = write_set(tmp_path / "set.jsonl", 2)
    with LoopbackServer() as srv:
        common = dict(model="openai:loopback", base_url=[srv.base_url], benchmark="custom", data=str(data),
                      judges=["refusal"], out=str(tmp_path / "runs"), name="p", progress=False, report=False)
        tis.evaluate(**common)
        with pytest.raises(ConfigError, match="another generation settings"):
            tis.evaluate(system_prompt="Think about safety first.", **common)
