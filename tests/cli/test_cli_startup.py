"""A command module that does not import stops `tis` at start-up with one line naming it."""

import subprocess
import sys

import pytest

from tis.cli import COMMAND_MODULES, CommandImportError, build_parser, main


def test_every_command_module_imports_and_registers():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"eval", "benchmarks", "judges", "models", "report"} <= set(commands)
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))


def test_a_module_with_a_missing_dependency_is_an_error_not_a_missing_command(tmp_path, monkeypatch):
    (tmp_path / "tis_test_cmds").mkdir()
    (tmp_path / "tis_test_cmds" / "__init__.py").write_text("")
    (tmp_path / "tis_test_cmds" / "broken.py").write_text(
        "import tis_no_such_dependency\n\ndef add_commands(sub):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandImportError, match="tis_test_cmds.broken does not import .*tis_no_such_dependency"):
        build_parser(["eval", "tis_test_cmds.broken"])


def test_a_missing_command_module_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr("tis.cli.COMMAND_MODULES", ("eval", "no_such_command"))
    assert main(["--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tis: error: the command module tis.cli.no_such_command does not import")


def test_a_module_without_add_commands_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "tis_test_cmds2").mkdir()
    (tmp_path / "tis_test_cmds2" / "__init__.py").write_text("")
    (tmp_path / "tis_test_cmds2" / "empty.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandImportError, match="has no add_commands"):
        build_parser(["tis_test_cmds2.empty"])


def test_help_runs_as_a_process():
    out = subprocess.run([sys.executable, "-c", "import sys; from tis.cli import main; sys.exit(main(['--help']))"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "eval" in out.stdout


def test_a_module_whose_flags_clash_is_an_error_naming_it(tmp_path, monkeypatch):
    (tmp_path / "tis_test_cmds3").mkdir()
    (tmp_path / "tis_test_cmds3" / "__init__.py").write_text("")
    (tmp_path / "tis_test_cmds3" / "clash.py").write_text(
        "from pydantic import BaseModel\n"
        "from tis.core.config import add_config_flags\n\n"
        "class C(BaseModel):\n    config: str = 'x'\n\n"
        "def add_commands(sub):\n"
        "    p = sub.add_parser('clash')\n    p.add_argument('--config')\n    add_config_flags(p, C)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CommandImportError, match=r"tis_test_cmds3.clash cannot set up its commands .*--config"):
        build_parser(["tis_test_cmds3.clash"])
