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
