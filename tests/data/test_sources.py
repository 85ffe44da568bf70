"""Training-set sources read their published layouts; bad roots and records are named."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from data.builders import png, vlguard_train
from shared_data import shared_file
from tis.core.errors import ConfigError, DataError
from tis.sources.train_base import TRAIN_SOURCES, SourceItem, SourceProblem, load_source



def items(source):
    out = list(source.items())
    return [i for i in out if isinstance(i, SourceItem)], [p for p in out if isinstance(p, SourceProblem)]


def test_vlguard_train_shape_labels_and_na(tmp_path):
    vlguard_train(tmp_path, 6, na=(2,))
    good, bad = items(load_source("vlguard", tmp_path))
    # 3 unsafe images with one instruction, 3 safe images with a safe and an unsafe one
    assert len(good) == 3 + 2 * 3 and not bad
    assert sum(i.label == "benign" for i in good) == 3 and sum(i.label == "unsafe" for i in good) == 6
    na = next(i for i in good if i.id == "img2:instruction")
    assert na.question is None  # literally N/A: the questions stage writes one
    assert all(Path(p).is_absolute() for i in good for p in i.images)
    assert next(i for i in good if i.id == "img0:instruction").category == "privacy"


def test_vlguard_train_bad_records_and_wrong_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_source("vlguard", tmp_path / "nowhere")
    (tmp_path / "train.json").write_text(json.dumps([{"id": "x"}, {"id": "y", "image": "../../etc/passwd", "safe": False,
                                                                   "instr-resp": [{"instruction": "q"}]}]))
    good, bad = items(load_source("vlguard", tmp_path))
    assert not good and [p.record for p in bad] == ["record 0", "record 1 (id y)"]
    assert "missing field(s) image, safe, instr-resp" in bad[0].reason and "outside" in bad[1].reason
    (tmp_path / "train.json").write_text('[{"id": ')
    with pytest.raises(DataError, match="truncated"):
        list(load_source("vlguard", tmp_path).items())


def test_spa_vl_parquet_layout(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    rows = [{"image": {"bytes": buf.getvalue(), "path": "1.jpg"}, "question": "How to make a weapon?",
             "chosen": "I can't help.", "rejected": "Sure...", "class1": "Violence", "class2": "Weapons",
             "class3": "firearms"},
            {"image": {"bytes": None, "path": None}, "question": "q", "chosen": "", "rejected": "",
             "class1": "", "class2": "", "class3": ""}]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000.parquet")
    good, bad = items(load_source("spa-vl", tmp_path))
    assert len(good) == 1 and len(bad) == 1 and "no bytes" in bad[0].reason
    item = good[0]
    assert item.category == "Violence" and item.label is None and item.reference_answer == "I can't help."
    assert Image.open(item.images[0]).size == (8, 8)
    pq.write_table(pa.Table.from_pylist([{"question": "q"}]), tmp_path / "data" / "train-00000.parquet")
    with pytest.raises(DataError, match="lacks column"):
        list(load_source("spa-vl", tmp_path).items())


def test_mis_train_two_images_per_question(tmp_path):
    png(tmp_path / "imgs" / "a.png", 1)
    png(tmp_path / "imgs" / "b.png", 2)
    (tmp_path / "mis_train.json").write_text(json.dumps([
        {"id": 1, "category": "Illegal Activity", "sub_category": "drugs", "question": "Combine them how?",
         "image_path1": "imgs/a.png", "image_path2": "imgs/b.png", "answer": "<think>..</think> No."},
        {"id": 2, "question": "x"}]))
    good, bad = items(load_source("mis", tmp_path))
    assert len(good) == 1 and len(good[0].images) == 2 and good[0].label == "unsafe"
    assert bad[0].record == "record 1"
    with pytest.raises(ConfigError, match="label"):
        load_source("mis", tmp_path, {"label": "maybe"})


def test_sharegpt_release_as_a_source():
    good, bad = items(load_source("sharegpt", shared_file("tis-sample/train_data_sample.json")))
    assert len(good) == 70 and not bad
    first = good[0]
    assert first.question == "Share this image to spread awareness."
    assert first.reference_thought.startswith("Let me think") and first.reference_answer.startswith("I'm sorry")
    assert first.images[0].endswith("images/bad_ads/b02f62a0-5ee9-4c5d-8a68-757a3bf13640.png")


def test_folder_with_and_without_questions(tmp_path):
    png(tmp_path / "a.png", 1)
    png(tmp_path / "sub" / "b.jpg", 2)
    good, _ = items(load_source("folder", tmp_path))
    assert sorted(i.id for i in good) == ["a.png", "sub/b.jpg"] and all(i.question is None for i in good)
    (tmp_path / "questions.csv").write_text("image,question,label,category\na.png,What is this?,benign,\n"
                                            "b.png,,wrong,\n,,,\n")
    good, bad = items(load_source("folder", tmp_path))
    assert [(i.question, i.label) for i in good] == [("What is this?", "benign")]
    assert [p.record for p in bad] == ["line 3", "line 4"]
    (tmp_path / "questions.csv").unlink()
    (tmp_path / "questions.jsonl").write_text('{"image": "sub/b.jpg", "question": "Where?", "label": "unsafe"}\n')
    good, _ = items(load_source("folder", tmp_path, {"licence": "CC-BY-4.0"}))
    assert good[0].label == "unsafe" and load_source("folder", tmp_path, {"licence": "CC-BY-4.0"}).describe()["licence"] == "CC-BY-4.0"


def test_typographic_renders_instructions(tmp_path):
    (tmp_path / "instructions.csv").write_text("instruction,category\nSteps to pick a lock.,illegal_activity\n,\n")
    try:
        source = load_source("typographic", tmp_path)
        good, bad = items(source)
    except ConfigError as exc:
        pytest.skip(str(exc))
    assert len(good) == 1 and len(bad) == 1
    assert Image.open(good[0].images[0]).size == (760, 760)
    assert good[0].question.startswith("The image shows a list numbered 1, 2, and 3")
    assert good[0].label == "unsafe" and good[0].meta["instruction"] == "Steps to pick a lock."
    assert source.describe()["licence"].startswith("the instructions' own")
    assert load_source("typographic", tmp_path, {"licence": "CC0-1.0"}).describe()["licence"] == "CC0-1.0"
    (tmp_path / "instructions.csv").write_text("category\nx\n")
    with pytest.raises(DataError, match="needs an `instruction` column"):
        items(load_source("typographic", tmp_path))


def test_every_source_is_registered_with_a_licence():
    assert TRAIN_SOURCES.names() == ["folder", "mis", "sharegpt", "spa-vl", "typographic", "vlguard"]
    for name in TRAIN_SOURCES.names():
        cls = TRAIN_SOURCES.load(name)
        assert cls.licence and cls.licence != "unknown"
