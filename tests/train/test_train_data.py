"""Training data in: the TiS release layout, dataset_info.json, messages sets, mixing, held-out split, bad records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tis.core.errors import ConfigError, DataError
from tis.train.data import load_mixture, load_set, parse_spec, part_text


def test_the_tis_release_layout_reads_as_image_then_question_and_the_whole_thought_as_the_answer(tis_dir):
    ds = load_set(str(tis_dir / "train_data.json"))
    raw = json.loads((tis_dir / "train_data.json").read_text())
    assert len(ds.records) == len(raw) == 8 and ds.layout == "json" and not ds.problems
    rec = ds.records[0]
    user, assistant = rec.messages
    assert user["role"] == "user" and user["content"][0] == {"type": "image"}
    assert user["content"][1]["text"] == raw[0]["conversations"][0]["value"].replace("<image>", "")
    assert part_text(assistant) == raw[0]["conversations"][1]["value"]  # thought and answer, unchanged
    assert rec.images == [tis_dir / raw[0]["images"][0]]
    assert len(ds.digest) == 64


def test_the_data_hash_changes_with_an_image(tmp_path, short_set):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(short_set.parent, copy)
    before = load_set(str(copy / "data.json")).digest
    from PIL import Image

    Image.new("RGB", (30, 30), "blue").save(copy / "images" / "a.png")
    assert load_set(str(copy / "data.json")).digest != before


def test_a_llamafactory_dataset_info_entry_with_its_own_tags(tmp_path):
    (tmp_path / "img.png").write_bytes(_png())
    rows = [{"msgs": [{"speaker": "me", "text": "<image>hi"}, {"speaker": "bot", "text": "<think>t</think>a"}],
             "pics": ["img.png"], "sys": "be safe"}]
    (tmp_path / "mine.json").write_text(json.dumps(rows))
    (tmp_path / "other.json").write_text("[]")
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "mine": {"file_name": "mine.json", "formatting": "sharegpt",
                 "columns": {"messages": "msgs", "images": "pics", "system": "sys"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}},
        "other": {"file_name": "other.json", "formatting": "sharegpt"}}))
    with pytest.raises(ConfigError, match=r"2 entries \(mine, other\); pick one"):
        load_set(str(tmp_path))
    ds = load_set(f"{tmp_path}#mine")
    msgs = ds.records[0].messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert part_text(msgs[0]) == "be safe" and part_text(msgs[2]) == "<think>t</think>a"
    with pytest.raises(ConfigError, match="no entry 'nope'"):
        load_set(f"{tmp_path}#nope")


def test_a_messages_parquet_with_embedded_image_bytes_and_typed_parts(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {"messages": [{"role": "user", "content": "what is shown"},
                      {"role": "assistant", "content": "<think>a dot</think>a dot"}],
         "images": [{"bytes": _png(), "path": None}]},
        {"messages": [{"role": "user", "content": "no image here"},
                      {"role": "assistant", "content": "answer"}], "images": []},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    ds = load_set(str(tmp_path / "train.parquet"))
    first, second = ds.records
    # TRL's convention: without a marker the images lead the first user turn
    assert first.messages[0]["content"][0] == {"type": "image"} and isinstance(first.images[0], bytes)
    assert first.open_images()[0].size == (4, 4)
    assert second.images == [] and second.messages[0]["content"] == [{"type": "text", "text": "no image here"}]


def test_a_datasets_folder_with_pil_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    ds = datasets.Dataset.from_dict({
        "messages": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "<think>x</think>y"}]}]],
        "images": [[Image.new("RGB", (5, 5), "red")]],
    })
    ds = ds.cast_column("images", datasets.Sequence(datasets.Image()))
    ds.save_to_disk(str(tmp_path / "set"))
    loaded = load_set(str(tmp_path / "set"))
    assert loaded.layout == "datasets"
    assert loaded.records[0].open_images()[0].size == (5, 5)
    assert part_text(loaded.records[0].messages[1]) == "<think>x</think>y"


def test_reasoning_content_goes_back_inside_the_thought_tags(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "q"},
                          {"role": "assistant", "reasoning_content": "weigh it", "content": "fine"}]}]
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    rec = load_set(str(tmp_path / "r.jsonl")).records[0]
    assert part_text(rec.messages[1]) == "<think>\nweigh it\n</think>\nfine"


def test_missing_images_and_wrong_image_counts_name_the_record_or_are_skipped_and_counted(tmp_path):
    (tmp_path / "ok.png").write_bytes(_png())
    rows = [
        {"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}], "images": ["ok.png"]},
        {"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}],
         "images": ["gone.png"]},
        {"conversations": [{"from": "human", "value": "<image><image>q"}, {"from": "gpt", "value": "a"}],
         "images": ["ok.png"]},
        {"conversations": [{"from": "human", "value": "q"}], "images": []},
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"d\.json\[1\]: image 'gone\.png' not found .*\(2 more bad records\).*--skip-bad"):
        load_set(str(tmp_path / "d.json"))
    ds = load_set(str(tmp_path / "d.json"), skip_bad=True)
    assert len(ds.records) == 1
    reasons = {p.record: p.reason for p in ds.problems}
    assert "2 <image> token(s) in the turns but 1 image(s)" in reasons["d.json[2]"]
    assert "no assistant turn" in reasons["d.json[3]"]


def test_mixing_weights_and_a_held_out_split_that_never_overlaps_training(tmp_path):
    def write(name, n):
        rows = [{"conversations": [{"from": "human", "value": f"{name} q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
                for i in range(n)]
        (tmp_path / f"{name}.json").write_text(json.dumps(rows))
        return str(tmp_path / f"{name}.json")

    safety, general = write("safety", 20), write("general", 40)
    mix = load_mixture([safety, f"{general}*0.25"], eval_fraction=0.1, seed=3)
    # 10% of each set is held out first: 2 of safety, 4 of general; then general's 36 are weighted 0.25 -> 9
    assert len(mix.eval) == 6 and len(mix.train) == 18 + 9
    assert not {id(r) for r in mix.eval} & {id(r) for r in mix.train}
    shares = {Path(s["path"]).stem: s for s in mix.sets}
    assert shares["general"]["used"] == 9 and shares["safety"]["share"] == round(18 / 27, 4)
    doubled = load_mixture([f"{safety}*2"], seed=0)
    assert len(doubled.train) == 40
    again = load_mixture([safety, f"{general}*0.25"], eval_fraction=0.1, seed=3)
    assert [r.id for r in again.train] == [r.id for r in mix.train]  # seeded: the same every time
    held = load_mixture([safety], [general])
    assert len(held.eval) == 40 and len(held.train) == 20


def test_bad_specs_are_config_errors():
    assert parse_spec("a/b.json#x*0.5") == (Path("a/b.json"), "x", 0.5)
    with pytest.raises(ConfigError, match="weight after"):
        parse_spec("a.json*lots")
    with pytest.raises(ConfigError, match="positive"):
        parse_spec("a.json*0")
    with pytest.raises(ConfigError, match="does not exist"):
        load_set("/nonexistent/set.json")
    with pytest.raises(ConfigError, match="--data is required"):
        load_mixture([])


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "green").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("embed", [True, False])
def test_a_tis_data_export_reads_as_sharegpt_and_as_its_parquet_folder(tmp_path, embed):
    pytest.importorskip("pyarrow")
    import hashlib

    from PIL import Image

    from tis.data.export import export
    from tis.data.records import BuiltRecord

    records = []
    for i in range(3):
        img = tmp_path / f"src{i}.png"
        Image.new("RGB", (6 + i, 6), "red").save(img)
        records.append(BuiltRecord(id=f"r{i}", source="folder", source_id=str(i), images=[str(img)],
                                   image_sha256=[hashlib.sha256(img.read_bytes()).hexdigest()],
                                   question=f"question {i}", thought=f"thought {i}", answer=f"answer {i}",
                                   status="kept"))
    export(records, tmp_path / "export", name="tis_safety", embed_images=embed)
    via_info = load_set(str(tmp_path / "export"))
    via_parquet = load_set(str(tmp_path / "export" / "hf"))
    assert via_info.layout == "sharegpt" and via_parquet.layout == "parquet"
    for ds in (via_info, via_parquet):
        assert len(ds.records) == 3 and not ds.problems
        rec = ds.records[2]
        assert part_text(rec.messages[0]) == "question 2" and rec.messages[0]["content"][0] == {"type": "image"}
        text = part_text(rec.messages[1])
        assert "thought 2" in text and text.rstrip().endswith("answer 2") and "</think>" in text
        assert rec.open_images()[0].size == (8, 6)
