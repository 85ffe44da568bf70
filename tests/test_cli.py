"""The `tis` command: fast start-up, and one clear line for each user mistake."""

import subprocess
import sys
from pathlib import Path

import pytest

from tis.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "src/tis/sources/data/safebench-tiny"


def test_help_imports_no_heavy_module():
    code = ("import sys, tis.cli; tis.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch','transformers','trl','peft','datasets','inspect_ai','pyarrow','vllm','aiohttp','rich','PIL','numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, message", [
    (["eval", "--benchmark", "safebnch-tiny"], "unknown benchmark 'safebnch-tiny'. Did you mean 'safebench-tiny'?"),
    (["eval", "--model", "gpt:x"], "unknown model backend 'gpt'"),
    (["eval", "--model", "openai:m"], "needs --base-url"),
    (["eval", "--model", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "TIS_TEST_UNSET_VAR"],
     "TIS_TEST_UNSET_VAR"),
    (["eval", "--judge", "nope"], "unknown judge 'nope'"),
    (["eval", "--benchmark", "safebench"], "needs its data folder: pass --data PATH"),
    (["eval", "--benchmark", "safebench", "--data", "/nonexistent/figstep"], "/nonexistent/figstep does not exist"),
    (["eval", "--set", "variant=colour"], "bad option"),
    (["eval", "--concurrency", "0"], "--concurrency"),
])
def test_user_mistakes_end_with_one_clear_line(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.delenv("TIS_TEST_UNSET_VAR", raising=False)
    code, out, err = run_cli(capsys, *argv, "--out", str(tmp_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tis: error: ") and message in lines[0], err
    assert "Traceback" not in err


def test_csv_with_missing_columns_names_them(capsys, tmp_path):
    (tmp_path / "safebench.csv").write_text("dataset,category_id,task_id\nForbidQI,1,1\n")
    code, _, err = run_cli(capsys, "eval", "--benchmark", "safebench", "--data", str(tmp_path), "--out", str(tmp_path))
    assert code == 2 and "missing column(s) category_name, question, instruction" in err
    assert not (tmp_path / "runs").exists()


def test_unknown_flag_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--colour", "red"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --colour red" in capsys.readouterr().err


def test_image_that_does_not_open_stops_before_any_model_call(capsys, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "SafeBench-Tiny.csv").write_text((SHIPPED / "SafeBench-Tiny.csv").read_text())
    for f in (SHIPPED / "images").iterdir():
        (data / "images" / f.name).write_bytes(f.read_bytes())
    (data / "images/query_ForbidQI_1_2_6.png").write_bytes(b"not a png")
    # an unreachable server: had the run gone on to the model, the error would be about the server
    argv = ["eval", "--data", str(data), "--model", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
            "--out", str(tmp_path / "runs")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "query_ForbidQI_1_2_6.png: sample 1-2: image does not open" in err and "--skip-bad" in err
    assert not (tmp_path / "runs").exists()
