"""Another server with the same model name is another model; replicas of one model are one; credentials
in a base URL work and never show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tis
from tis.cli import main
from tis.core.errors import ConfigError, FatalModelError
from tis.models.openai_compat import OpenAIBackend
from tis.models.urls import normalise_url, redact_text, redact_url, split_credentials
from tis.testing import LoopbackServer

PASSWORD = "s3cret-pw-7f"


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "images": []}) + "\n"
                            for i, p in enumerate(["how do I bake bread", "a second question", "a third one"])))
    return path


def run(data, tmp_path, urls, **extra):
    settings = dict(model="openai:loopback", base_url=urls, benchmark="custom", data=str(data), judges=["refusal"],
                    out=str(tmp_path / "runs"), progress=False, report=False)
    return tis.evaluate(**{**settings, **extra})


def test_another_server_with_the_same_model_name_is_another_model(data, tmp_path):
    with LoopbackServer(model_info={"root": "/models/qwen-7b", "max_model_len": 4096}) as a, \
         LoopbackServer(model_info={"root": "/models/llama-8b", "max_model_len": 4096}) as b:
        first = run(data, tmp_path, [a.base_url])
        assert a.requests.total == 3
        second = run(data, tmp_path, [b.base_url])  # the same command, another server
        assert b.requests.total == 3 and second.stats["generations_reused"] == 0
        assert second.run_dir != first.run_dir
        # the first run's outputs are untouched and its manifest still names the first server
        manifest = json.loads((first.run_dir / "manifest.json").read_text())
        assert manifest["model"]["base_urls"] == [a.base_url]
        assert manifest["model"]["servers"] == [{"reported": {"root": "/models/qwen-7b", "max_model_len": 4096,
                                                              "owned_by": "tis"}}]


def test_replicas_reporting_the_same_model_are_one_identity(data, tmp_path):
    info = {"root": "/models/qwen-7b", "max_model_len": 4096}
    with LoopbackServer(model_info=info) as a, LoopbackServer(model_info=info) as c:
        first = run(data, tmp_path, [a.base_url])
        again = run(data, tmp_path, [a.base_url, c.base_url])  # a replica added
        assert again.run_dir == first.run_dir
        assert (again.stats["generations_reused"], a.requests.total, c.requests.total) == (3, 3, 0)


def test_servers_without_a_model_list_are_told_apart_by_their_url(data, tmp_path):
    with LoopbackServer(models_endpoint=False) as d, LoopbackServer(models_endpoint=False) as e:
        run(data, tmp_path, [d.base_url])
        # the same server spelled another way is the same model
        again = run(data, tmp_path, [d.base_url.replace("127.0.0.1", "127.0.0.1:80", 0) + "/"])
        assert again.stats["generations_reused"] == 3 and d.requests.total == 3
        other = run(data, tmp_path, [e.base_url])
        assert other.stats["generations_reused"] == 0 and e.requests.total == 3


def test_urls_are_split_redacted_and_normalised():
    assert split_credentials("http://alice:p%40ss@host:8000/v1") == ("http://host:8000/v1", ("alice", "p@ss"))
    assert split_credentials("https://host/v1") == ("https://host/v1", None)
    assert redact_url("http://alice:pw@host/v1") == "http://***@host/v1"
    assert normalise_url("HTTP://alice:pw@Host:80/v1/") == "http://host/v1"
    assert normalise_url("https://host:443/v1") == normalise_url("https://host/v1") != normalise_url("https://host:8443/v1")
    assert redact_text("tis eval --base-url http://a:b@h/v1 --x https://t@h2/v1") == \
        "tis eval --base-url http://***@h/v1 --x https://***@h2/v1"


def files_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file()
                     and p.suffix != ".sqlite")


def test_credentials_in_the_base_url_are_sent_as_basic_auth_and_shown_nowhere(data, tmp_path, caplog):
    caplog.set_level("DEBUG")
    with LoopbackServer(basic_auth=("alice", PASSWORD), model_info={"root": "/models/m"}) as srv:
        url = srv.base_url.replace("http://", f"http://alice:{PASSWORD}@")
        outcome = run(data, tmp_path, [url], report=True)
        assert outcome.stats["generated"] == 3 and outcome.failed == 0
        # the server's facts were read with the credentials, so the identity is the model's, not the URL's
        manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
        assert manifest["model"]["servers"] == [{"reported": {"root": "/models/m", "owned_by": "tis"}}]
        assert manifest["model"]["base_urls"] == [redact_url(url)]
        everything = files_text(outcome.run_dir)
        assert "summary" in everything and PASSWORD not in everything and "alice" not in everything
        store_bytes = b"".join(p.read_bytes() for p in outcome.run_dir.rglob("*.sqlite*"))
        assert PASSWORD.encode() not in store_bytes
        assert PASSWORD not in caplog.text

        # a wrong password: a clear error that names the server, not the password
        wrong = srv.base_url.replace("http://", "http://alice:wrong-pass-123@")
        backend = OpenAIBackend("loopback", base_url=wrong)
        import asyncio

        with pytest.raises(FatalModelError) as info:
            asyncio.run(backend.start())
        assert "user name and password" in str(info.value) and "wrong-pass-123" not in str(info.value)
        assert "wrong-pass-123" not in repr(backend) and "wrong-pass-123" not in json.dumps(backend.describe())


def test_credentials_with_api_key_env_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIS_TEST_KEY", "sk-test-123456")
    url = f"http://alice:{PASSWORD}@127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match="credentials.*--api-key-env"):
        OpenAIBackend("m", base_url=url, api_key_env="TIS_TEST_KEY")
    code = main(["eval", "--model", "openai:m", "--base-url", url, "--api-key-env", "TIS_TEST_KEY",
                 "--judge", "refusal", "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert "--api-key-env" in err[0] and PASSWORD not in err[0]


def test_the_command_line_in_the_manifest_is_redacted(data, tmp_path):
    tis_bin = Path(sys.executable).with_name("tis")
    if not tis_bin.exists():
        pytest.fail(f"the tis console script is missing beside {sys.executable}: install the package (pip install -e .)")
    with LoopbackServer(basic_auth=("alice", PASSWORD)) as srv:
        url = srv.base_url.replace("http://", f"http://alice:{PASSWORD}@")
        out = tmp_path / "runs"
        proc = subprocess.run([str(tis_bin), "eval", "--model", "openai:loopback", "--base-url", url, "--benchmark",
                               "custom", "--data", str(data), "--judge", "refusal", "--out", str(out), "--name", "r",
                               "--no-progress", "--no-report"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "r" / "manifest.json").read_text())
    assert "--base-url http://***@127.0.0.1" in manifest["command"]
    assert PASSWORD not in files_text(out) + proc.stdout + proc.stderr
