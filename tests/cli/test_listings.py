"""Listings: stdout, whole names, --json, tab-separated rows when piped, COLUMNS honoured; aliases."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tis.cli import main
from tis.cli.listing import table_lines
from tis.reasoning.profiles import get_profile, load_profiles
from tis.core.errors import ConfigError

LISTINGS = [["models", "list"], ["benchmarks", "list"], ["judges", "list"], ["models", "backends"]]


def tis(*argv, env=None):
    code = "import sys; from tis.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def tis_in_terminal(*argv, columns: int) -> str:
    """Run with stdout on a real pseudo-terminal COLUMNS wide; what it printed."""
    master, slave = pty.openpty()
    code = "import sys; from tis.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=slave, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": str(columns)})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def expected_keys(listing):
    if listing == ["models", "list"]:
        return list(load_profiles())
    if listing == ["benchmarks", "list"]:
        from tis.sources import all_benchmarks
        return all_benchmarks().names()
    if listing == ["judges", "list"]:
        from tis.judges import JUDGES
        return [e.name for e in JUDGES.entries()]
    from tis.models import MODELS
    return [e.name for e in MODELS.entries()]


@pytest.mark.parametrize("listing", LISTINGS, ids=" ".join)
def test_piped_listing_is_tab_separated_whole_rows_on_stdout(listing):
    out = tis(*listing, env={"COLUMNS": "40"})
    assert out.returncode == 0 and out.stderr == ""
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == expected_keys(listing)       # every key, whole, no header
    assert len({len(r) for r in rows}) == 1 and len(rows[0]) >= 2
    assert not any("…" in line for line in out.stdout.splitlines())


@pytest.mark.parametrize("listing", LISTINGS, ids=" ".join)
def test_json_listing_has_every_record(listing, capsys):
    assert main([*listing, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == expected_keys(listing)


def test_models_list_shows_aliases_and_whole_fields():
    rows = {r.split("\t")[0]: r.split("\t") for r in tis("models", "list").stdout.splitlines()}
    assert rows["Llama-3.2V-11B-cot"][1] == "LLaVA-CoT, LLaVA-o1"
    assert "Qwen/Qwen3-VL-235B-A22B-Thinking" in rows["Qwen3-VL-235B-A22B-Thinking"]


@pytest.mark.parametrize("columns", [80, 120])
def test_terminal_table_fits_columns_and_never_cuts_the_key(columns):
    text = tis_in_terminal("models", "list", columns=columns)
    lines = text.splitlines()
    assert lines[0].split()[0] == "profile"
    assert max(len(line) for line in lines) <= columns
    starts = {line.split()[0] for line in lines if line and not line.startswith(" ")}
    assert set(load_profiles()) <= starts
    assert "LLaVA-CoT" in text
    # a wider terminal shows more
    if columns == 80:
        assert "left out at 80 columns" in " ".join(lines[-2:])


def test_terminal_benchmarks_list_honours_columns():
    narrow = tis_in_terminal("benchmarks", "list", columns=70).splitlines()
    wide = tis_in_terminal("benchmarks", "list", columns=200).splitlines()
    assert max(map(len, narrow)) <= 70 < max(map(len, wide))
    assert len(wide) < len(narrow)  # less wrapping


def test_table_lines_keep_the_first_column_even_when_too_wide():
    lines = table_lines(("name", "summary"), [("a-very-long-name-that-does-not-fit", "words " * 20)], 20)
    assert lines[1].startswith("a-very-long-name-that-does-not-fit")
    lines = table_lines(("name", "summary"), [("key", "one two three four five six seven")], 24)
    assert all(len(line) <= 24 for line in lines) and lines[1].startswith("key ")
    assert " ".join(line[6:] for line in lines[1:]).split() == "one two three four five six seven".split()
    assert len(lines) > 2  # wrapped, not cut


def test_profile_aliases_resolve_in_any_case():
    assert get_profile("LLaVA-CoT").name == "Llama-3.2V-11B-cot"
    assert get_profile("llava-o1").name == "Llama-3.2V-11B-cot"


def test_an_alias_naming_two_profiles_is_an_error(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('["My-CoT"]\nfamily = "x"\naliases = ["LLaVA-CoT"]\n')
    with pytest.raises(ConfigError, match=r"mine.toml: profile 'My-CoT': field 'aliases': 'LLaVA-CoT' already "
                                          r"names profile 'Llama-3.2V-11B-cot'"):
        load_profiles([f])


def test_eval_takes_a_profile_alias(tmp_path, capsys):
    from tis.testing.openai_server import LoopbackServer

    with LoopbackServer() as srv:
        code = main(["eval", "--model", "openai:loopback", "--base-url", srv.base_url, "--profile", "LLaVA-CoT",
                     "--judge", "refusal", "--limit", "1", "--no-progress", "--no-report", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads(next(tmp_path.glob("*/manifest.json")).read_text())
    assert "llava_cot" in json.dumps(manifest)


@pytest.mark.parametrize("content, message", [
    (None, "profiles file not found"),
    ("x = [\n", "not valid TOML"),
    ('["P"]\nfamily = "f"\ntemperature = -1\n', "profile 'P': field 'temperature'"),
])
def test_profiles_file_missing_or_invalid_is_an_error_without_profile(tmp_path, capsys, content, message):
    f = tmp_path / "profiles.toml"
    if content is not None:
        f.write_text(content)
    code = main(["eval", "--profiles", str(f), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(f) in err[0] and message in err[0], err
    assert not (tmp_path / "runs").exists()


def test_profiles_file_formats_are_usable_without_profile(tmp_path, capsys):
    f = tmp_path / "profiles.toml"
    f.write_text('[formats.answer_tag]\nkind = "tags"\nopen = "<reason>"\nclose = "</reason>"\n')
    from tis.testing.openai_server import LoopbackServer

    with LoopbackServer() as srv:
        code = main(["eval", "--model", "openai:loopback", "--base-url", srv.base_url, "--profiles", str(f),
                     "--thought-format", "answer_tag", "--judge", "refusal", "--limit", "1", "--no-progress",
                     "--no-report", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "answer_tag" in next((tmp_path / "runs").glob("*/manifest.json")).read_text()


def test_readme_names_every_shipped_alias():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for profile in load_profiles().values():
        for alias in profile.aliases:
            assert alias in readme and f"`{profile.name}`" in readme, (alias, profile.name)
