import json

import pytest
from bench_files import write_image

from tis.sources.base import Problem
from tis.sources.mossbench import MOSSBench
from tis.core.errors import ConfigError, DataError


def item(pid, over, image=None):
    return {"image": image or f"{pid}.png", "short description": "a toy gun", "description": "A child plays.",
            "question": f"What game is being played in picture {pid}?", "pid": str(pid),
            "metadata": {"over": over, "human": 1, "child": 1, "syn": 0, "ocr": 0, "harm": 3}}


def write_moss(root, items=None):
    items = items if items is not None else {"1": item(1, "type 1"), "2": item(2, "type 2", "images/2.png"),
                                             "3": item(3, "type 3")}
    info = root / "data" / "images_information"
    info.mkdir(parents=True)
    (info / "information.json").write_text(json.dumps(items))
    for n in (1, 2, 3):
        write_image(root / "data" / "images" / f"{n}.png")
    return root


def test_samples_types_and_meta(tmp_path):
    root = write_moss(tmp_path / "MOSSBench")
    samples = list(MOSSBench(root).samples())
    assert [s.id for s in samples] == ["1", "2", "3"]
    assert [s.category for s in samples] == ["exaggerated risk", "negated harm", "counterintuitive interpretation"]
    s = samples[0]
    assert s.group == "over-refusal" and s.text == "What game is being played in picture 1?"
    assert s.images[0].path == str(root / "data/images/1.png") and samples[1].images[0].path == str(root / "data/images/2.png")
    assert s.meta["over"] == "type 1" and s.meta["over_type"] == 1 and s.meta["harm"] == 3
    assert s.meta["short_description"] == "a toy gun"
    assert [s.id for s in MOSSBench(root, {"over_type": [2, 3]}).samples()] == ["2", "3"]
    with pytest.raises(ConfigError, match="over_type"):
        MOSSBench(root, {"over_type": 4})


def test_problems_and_faults(tmp_path):
    items = {"1": item(1, "type 1", "../../../../etc/passwd"), "2": item(2, "type 9"), "4": item(4, "type 1")}
    root = write_moss(tmp_path / "m", items)
    a, b, c = MOSSBench(root).records()
    assert isinstance(a, Problem) and "points outside" in a.message and a.record == "item 1"
    assert isinstance(b, Problem) and "metadata.over" in b.message
    assert isinstance(c, Problem) and c.file.endswith("data/images/4.png")
    with pytest.raises(DataError, match=r"did you mean .*/m\?"):
        list(MOSSBench(tmp_path).records())
    (root / "data/images_information/information.json").write_text('{"1": {')
    with pytest.raises(DataError, match="information.json is not valid JSON"):
        list(MOSSBench(root).records())
