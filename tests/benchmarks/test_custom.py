import json

import pytest
from bench_files import write_image

from tis.sources.base import Problem
from tis.sources.check import check_benchmark
from tis.sources.custom import CustomJSONL
from tis.core.errors import DataError


def write_jsonl(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_reads_prompts_images_and_optional_fields(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    write_image(tmp_path / "imgs/b.jpg")
    file = write_jsonl(tmp_path / "redteam.jsonl", [
        {"id": "q1", "prompt": "What is shown here?", "images": ["imgs/a.png", "imgs/b.jpg"], "category": "weapons",
         "group": "jailbreak", "meta": {"goal": "build a weapon"}},
        "",
        {"id": 2, "prompt": "A text-only question."},
    ])
    a, b = CustomJSONL(file).samples()
    assert a.id == "q1" and a.category == "weapons" and a.group == "jailbreak" and a.meta == {"goal": "build a weapon"}
    assert [p.type for p in a.content] == ["image", "image", "text"]
    assert a.images[1].path == str(tmp_path / "imgs/b.jpg")
    assert (b.id, b.group, b.category, b.images, b.text) == ("2", "custom", None, [], "A text-only question.")
    assert [s.id for s in CustomJSONL(tmp_path).samples()] == ["q1", "2"]  # the folder holding one .jsonl


def test_every_bad_line_is_a_problem_naming_it(tmp_path):
    file = write_jsonl(tmp_path / "set.jsonl", [
        {"id": "ok", "prompt": "fine"},
        '{"id": "cut", "prompt": "trunc',
        {"id": "x", "prompt": "p", "image": "a.png"},
        {"prompt": "no id"},
        {"id": "ok", "prompt": "again"},
        {"id": "g", "prompt": "p", "group": "harmful"},
        {"id": "esc", "prompt": "p", "images": ["../../etc/passwd"]},
        {"id": "gone", "prompt": "p", "images": ["missing.png"]},
    ])
    items = list(CustomJSONL(file).records())
    assert not isinstance(items[0], Problem)
    problems = items[1:]
    assert [p.record.split(" (")[0] for p in problems] == [f"line {n}" for n in range(2, 9)]
    messages = [p.message for p in problems]
    assert "not valid JSON" in messages[0]
    assert "unknown key(s) image; expected id, prompt, images" in messages[1]
    assert messages[2] == "missing id"
    assert "duplicate id ok" in messages[3]
    assert "group should be one of" in messages[4]
    assert "points outside" in messages[5]
    assert problems[6].file.endswith("missing.png")
    assert len(check_benchmark(CustomJSONL(file)).problems) == 7


def test_folder_without_or_with_several_files(tmp_path):
    with pytest.raises(DataError, match="no .jsonl file"):
        list(CustomJSONL(tmp_path).records())
    write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "prompt": "p"}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "prompt": "p"}])
    with pytest.raises(DataError, match="several .jsonl files"):
        list(CustomJSONL(tmp_path).records())


def write_with_a_latin1_line(tmp_path):
    file = tmp_path / "set.jsonl"
    lines = [json.dumps({"id": "a", "prompt": "first"}).encode(),
             '{"id": "b", "prompt": "caf\u00e9 cr\u00e8me"}'.encode("latin-1"),  # one line saved as Latin-1
             json.dumps({"id": "c", "prompt": "d\u00e9j\u00e0 vu"}, ensure_ascii=False).encode()]
    file.write_bytes(b"\n".join(lines) + b"\n")
    return file


def test_a_line_that_is_not_utf8_is_a_problem_naming_it(tmp_path):
    file = write_with_a_latin1_line(tmp_path)
    items = list(CustomJSONL(file).records())
    assert [i.id for i in items if not isinstance(i, Problem)] == ["a", "c"]
    [bad] = [i for i in items if isinstance(i, Problem)]
    assert bad.record == "line 2" and "not UTF-8 text (byte 0xe9 at column 27)" in bad.message
    with pytest.raises(DataError, match=r"set.jsonl: line 2: not UTF-8 text .*--skip-bad"):
        list(CustomJSONL(file).samples())
    problems = []
    assert [s.id for s in CustomJSONL(file).samples(skip_bad=True, problems=problems)] == ["a", "c"]
    assert len(problems) == 1


def test_skip_bad_runs_without_the_bad_line(tmp_path, capsys):
    from tis.cli import main
    from tis.testing.openai_server import LoopbackServer

    file = write_with_a_latin1_line(tmp_path)
    argv = ["eval", "--benchmark", "custom", "--data", str(file), "--judge", "refusal", "--no-progress",
            "--no-report", "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 2: not UTF-8" in err[0]
    with LoopbackServer() as srv:
        code = main([*argv, "--model", "openai:loopback", "--base-url", srv.base_url, "--skip-bad"])
        assert code == 0, capsys.readouterr().err
        assert srv.requests.total == 2


def test_a_byte_order_mark_is_not_a_problem(tmp_path):
    file = tmp_path / "bom.jsonl"
    file.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "prompt": "p"}).encode() + b"\n")
    assert [s.id for s in CustomJSONL(file).samples()] == ["a"]
