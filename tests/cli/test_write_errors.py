"""Write errors end in one line naming the path and exit 2, never a traceback (exit 1 means failed
generations)."""

import errno
import shutil
import stat

import pytest

from tis.cli import main, os_error_message
from tis.testing.openai_server import LoopbackServer
from unprivileged import run_tis_unprivileged


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    with LoopbackServer() as srv:
        code = main(["eval", "--model", "openai:loopback", "--base-url", srv.base_url, "--judge", "refusal",
                     "--limit", "2", "--no-progress", "--no-report", "--out", str(out), "--name", "r"])
    assert code == 0
    return out / "r"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tis: error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def read_only_copy(finished_run, tmp_path):
    run = tmp_path / "ro-run"
    shutil.copytree(finished_run, run)
    for path in [*run.rglob("*"), run]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield run
    finally:
        for path in [run, *run.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def one_error_line_of(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tis: error: ") and "Traceback" not in err, err
    return lines[0]


def test_report_on_a_read_only_run_names_the_file_and_suggests_out(read_only_copy):
    code, _, err = run_tis_unprivileged("report", read_only_copy)
    assert code == 2
    line = one_error_line_of(err)
    assert f"cannot write the report {read_only_copy / 'report.html'}" in line and "--out" in line
    assert not (read_only_copy / "report.html").exists()


def test_rejudging_a_read_only_run_is_one_line(read_only_copy):
    code, _, err = run_tis_unprivileged("judge", read_only_copy, "--judge", "refusal", "--no-progress")
    assert code == 2
    line = one_error_line_of(err)
    assert str(read_only_copy) in line or "read-only" in line


def test_report_out_under_a_file_or_onto_a_folder(finished_run, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["report", str(finished_run), "--out", str(tmp_path / "afile" / "r.html")]) == 2
    assert f"{tmp_path / 'afile'} is a file, not a folder" in one_error_line(capsys)
    assert main(["report", str(finished_run), "--out", str(tmp_path)]) == 2
    assert f"cannot write {tmp_path}: it is a folder" in one_error_line(capsys)


def test_compare_out_into_a_missing_folder(finished_run, tmp_path, capsys):
    target = tmp_path / "missing" / "table.md"
    assert main(["compare", str(finished_run), "--table", "--out", str(target)]) == 2
    assert f"cannot write {target}: folder {target.parent} does not exist" in one_error_line(capsys)
    assert main(["compare", str(finished_run), "--table", "--out", str(tmp_path / "table.md")]) == 0
    assert (tmp_path / "table.md").read_text().startswith("|")


def test_any_command_failing_on_a_file_ends_in_one_line(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "tis_test_writer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cmd.py").write_text(
        "from pathlib import Path\n\n"
        "def add_commands(sub):\n"
        "    p = sub.add_parser('write-to')\n    p.add_argument('path')\n"
        "    p.set_defaults(func=lambda a: Path(a.path).write_text('x'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("tis.cli.COMMAND_MODULES", ("tis_test_writer.cmd",))
    target = tmp_path / "no-such-folder" / "out.txt"
    assert main(["write-to", str(target)]) == 2
    assert one_error_line(capsys) == f"tis: error: {target}: No such file or directory"
    (tmp_path / "blocker").write_text("")
    assert main(["write-to", str(tmp_path / "blocker" / "x")]) == 2
    assert "a file is in the way where a folder is expected" in one_error_line(capsys)


def test_os_error_messages():
    assert os_error_message(PermissionError(errno.EACCES, "Permission denied", "/r/report.html")) == \
        "/r/report.html: Permission denied (check the permissions, or write somewhere else (--out))"
    assert os_error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/x")).startswith(
        "/mnt/x: Read-only file system (the file system is read-only")
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device")) == \
        "No space left on device (free some space or write somewhere else)"
    assert os_error_message(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == \
        "/a -> /b: Invalid cross-device link"
