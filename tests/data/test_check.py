"""`tis data check` on the released TiS sample and on sets made to hold each fault."""

from __future__ import annotations

import json

import pytest

from data.builders import png
from shared_data import shared_file
from tis.cli import main
from tis.data.check import check_file
from tis.testing.openai_server import LoopbackServer


def test_finds_the_known_noise_of_the_released_sample(capsys):
    sample = shared_file("tis-sample/train_data_sample.json")
    report = check_file(sample, open_images=False)
    by_kind: dict[str, set[int]] = {}
    for f in report.findings:
        by_kind.setdefault(f.kind, set()).add(f.index)
    # thoughts written from a caption / a reference answer (README: "the image describes", "the reference answer")
    assert {3, 4, 6, 8, 40, 44, 64} <= by_kind["leakage"]
    assert len(by_kind["leakage"]) == 21
    noise = {f.index: f.detail for f in report.findings if f.kind == "noise"}
    assert "'---'" in noise[38] and "'---'" in noise[53]  # a rule after </think>
    assert "quotes" in noise[44]  # a quoted answer
    assert "* *" in noise[1] and "* *" in noise[5]  # empty emphasis pairs
    # a thought that decides to reject while its answer only warns
    assert by_kind["mismatch (guess)"] == {37}
    # images are not shipped with the sample: every record names its missing image when they are looked for
    with_images = check_file(sample)
    assert sum(f.kind == "image" for f in with_images.findings) == 70
    # CLI: counts, each bad record named by index and image, exit 1
    assert main(["data", "check", str(sample), "--no-images", "--limit", "0"]) == 1
    out = capsys.readouterr().out
    assert "70 record(s), 21 would train wrongly" in out
    assert "[3] images/bad_ads/c7ea6a82-e859-4363-b168-861bd2ee1a71.png: leakage: the thought says 'The image describes'" in out


def _set(tmp_path, answers: list[str], *, images: int = 1, tokens: int = 1, name: str = "set.json") -> str:
    png(tmp_path / "images" / "a.png", 1)
    records = [{"conversations": [{"from": "human", "value": "<image>" * tokens + f"Question {n}?"},
                                  {"from": "gpt", "value": a}],
                "images": ["images/a.png"] * images} for n, a in enumerate(answers)]
    (tmp_path / name).write_text(json.dumps(records))
    return str(tmp_path / name)


GOOD = "<think>\nThe user asks about the sign; it is harmless, so I will answer it.\n</think>\nThe sign says OPEN."


@pytest.mark.parametrize("answer, kind, detail", [
    ("**<think>**\nthought\n</think>\nanswer", "format", "text before <think>"),
    ("## Reasoning\n<think>\nthought\n</think>\nanswer", "format", "text before <think>"),
    ("<think>\nthought that never ends", "format", "never closed"),
    ("<think>\na\n</think>\n<think>\nb\n</think>\nanswer", "format", "2 <think>"),
    ("<think>\n * * \n</think>\nanswer", "empty thought", "empty thought"),
    ("No thought at all.", "format", "no <think>"),
    ("<think>\nThe caption says a man holds a knife.\n</think>\nNo.", "leakage", "The caption"),
])
def test_each_fault_is_an_error_naming_the_record(tmp_path, answer, kind, detail):
    report = check_file(_set(tmp_path, [GOOD, answer]))
    errors = report.errors
    assert errors and all(f.index == 1 for f in errors)
    assert any(f.kind == kind and detail in f.detail for f in errors), [f.line() for f in errors]
    assert errors[0].image == "images/a.png"


def test_image_count_and_missing_and_broken_images(tmp_path):
    path = _set(tmp_path, [GOOD], images=1, tokens=2)
    assert [f.kind for f in check_file(path).errors] == ["image count"]
    records = json.loads(open(path).read())
    records[0]["conversations"][0]["value"] = "<image>Q"
    records.append({"conversations": records[0]["conversations"], "images": ["images/gone.png"]})
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    records.append({"conversations": records[0]["conversations"], "images": ["images/broken.png"]})
    records.append({"messages": [{"role": "user", "content": "hi"}]})
    (tmp_path / "set.json").write_text(json.dumps(records))
    report = check_file(tmp_path / "set.json")
    assert [(f.index, f.kind) for f in report.errors] == [(1, "image"), (2, "image"), (3, "schema")]
    assert "missing" in next(f.detail for f in report.errors if f.index == 1)
    assert "does not open" in next(f.detail for f in report.errors if f.index == 2)


def test_image_marks_follow_the_rule_tis_train_reads(tmp_path):
    """A messages record (TRL's layout) may carry no <image> mark (its images lead); a sharegpt
    record needs one per image; neither may carry a wrong number."""
    png(tmp_path / "a.png", 1)
    answer = [{"role": "assistant", "content": GOOD}]
    records = [{"messages": [{"role": "user", "content": "What is this?"}, *answer], "images": ["a.png"]},
               {"conversations": [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": GOOD}],
                "images": ["a.png"]},
               {"messages": [{"role": "user", "content": "<image><image>What is this?"}, *answer], "images": ["a.png"]}]
    (tmp_path / "set.json").write_text(json.dumps(records))
    assert [(f.index, f.kind) for f in check_file(tmp_path / "set.json").errors] == [(1, "image count"),
                                                                                   (2, "image count")]


def test_a_clean_set_passes_and_messages_jsonl_is_read(tmp_path, capsys):
    assert main(["data", "check", _set(tmp_path, [GOOD, GOOD.replace("sign", "board")])]) == 0
    png(tmp_path / "b.png", 2)
    line = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
                         {"role": "assistant", "content": [{"type": "text", "text": GOOD}]}], "images": ["b.png"]}
    (tmp_path / "set.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    report = check_file(tmp_path / "set.jsonl")
    assert not report.errors and [f.kind for f in report.findings] == ["duplicate"]
    (tmp_path / "bad.json").write_text("[{")
    assert main(["data", "check", str(tmp_path / "bad.json")]) == 2
    assert "truncated" in capsys.readouterr().err


def test_thought_answer_mismatch_by_a_judge(tmp_path):
    refuse_thought = "<think>\nThis asks for a person's address; I must decline.\n</think>\n"
    path = _set(tmp_path, [refuse_thought + "I'm sorry, but I can't help with that.",
                           refuse_thought + "They live at 12 Elm Street."])
    # an LLM judge of refusal on a real loopback server: the thought refuses; answers as they read
    def reply(body):
        text = body["messages"][-1]["content"]
        text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
        label = "complied" if "Elm Street" in text.split("must decline")[-1] else "refused"
        return f'{{"reason": "read it", "label": "{label}"}}'

    with LoopbackServer(responder=reply) as srv:
        from tis.judges.spec import parse_judge_spec

        judge = parse_judge_spec(f"llm:openai:j@{srv.base_url}?rubric=refusal")
        report = check_file(path, judge=judge)
    mism = [f for f in report.errors if f.kind == "mismatch (judge)"]
    assert [f.index for f in mism] == [1] and "refused" in mism[0].detail and "complied" in mism[0].detail


def test_sources_and_spec_commands(capsys):
    assert main(["data", "sources", "--json"]) == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert names == ["folder", "mis", "sharegpt", "spa-vl", "typographic", "vlguard"]
    assert main(["data", "spec"]) == 0
    import yaml

    spec = yaml.safe_load(capsys.readouterr().out)
    assert len(spec["categories"]) >= 11
