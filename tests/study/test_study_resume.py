"""A study killed mid-cell (SIGKILL) resumes: finished cells are not run again, the half-done cell pays only
for the samples it had not stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tis.study.runner import load_plan, read_state, run_study
from tis.testing.openai_server import LoopbackServer

from study_helpers import responder

SRC = Path(__file__).resolve().parents[2] / "src"


class Counted:
    def __init__(self):
        self.calls = 0

    def __call__(self, body):
        self.calls += 1
        return responder(body)


def stored(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_resume_after_kill(study_file, tmp_path):
    counted = Counted()
    with LoopbackServer(latency_s=0.12, model_ids=("reasoner", "base"), responder=counted) as srv:
        path = study_file(srv.base_url, judges=["refusal"], defences=[],
                          defaults={"concurrency": 1, "max_retries": 0})
        out = tmp_path / "out"
        planned = len(load_plan(path, out=out).evals) * 6
        code = ("import sys, tis.cli; tis.cli.COMMAND_MODULES = ('study',); "
                f"sys.exit(tis.cli.main(['study', 'run', {str(path)!r}, '--out', {str(out)!r}, '--no-progress']))")
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            # kill when three cells are done and the fourth has stored some of its six samples
            fourth = out / "runs" / "reasoner" / "cap" / "tis.sqlite"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = [k for k, v in read_state(out).items() if v["status"] == "done"]
                if len(done) >= 3 and 2 <= stored(fourth) < 6:
                    break
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        first = counted.calls
        state = read_state(out)
        done_before = {k for k, v in state.items() if v["status"] == "done"}
        assert 3 <= len(done_before) < len(load_plan(path, out=out).evals)

        outcome = run_study(load_plan(path, out=out), progress=False, write=lambda line: None)
        second = counted.calls - first
        assert not outcome.failed
        assert not done_before & set(outcome.ran)  # finished cells are not run again
        assert {k for k, r in outcome.results.items() if r.status == "skipped"} == done_before
        # every sample asked once, but for the one in flight when the process was killed
        assert planned <= first + second <= planned + 1
        assert second <= planned - len(done_before) * 6 - 1  # the half-done cell resumed from its store
        assert all(v["status"] == "done" for v in read_state(out).values())
