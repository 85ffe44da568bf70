import json
import sys

import pytest
from bench_files import write_image

from tis.sources import BENCHMARKS, all_benchmarks, load_entry_points, parse_options
from tis.cli import main
from tis.core.errors import ConfigError

LOADERS = ["custom", "hades", "jailbreakv-28k", "mis", "mm-safetybench", "mossbench", "mssbench", "safebench",
           "safebench-tiny", "siuo", "vlguard", "vlsbench"]


def test_every_loader_is_registered_and_describes_itself():
    from pydantic import BaseModel

    assert set(LOADERS) <= set(BENCHMARKS.names())
    for name in LOADERS:
        cls = BENCHMARKS.load(name)
        assert cls.name == name and cls.group in ("jailbreak", "awareness", "over-refusal", "custom")
        assert issubclass(cls.Options, BaseModel) and cls.Options.model_config.get("extra") == "forbid"
        if name != "custom":
            assert cls.citation and cls.licence
    for name in ("mm-safetybench", "siuo"):
        assert "non-commercial" in BENCHMARKS.load(name).licence


def test_parse_options_types_values():
    assert parse_options(["step=5", "ratio=0.5", "tiny=true", "x=False", "variant=SD,TYPO", "scenario=01-Sex",
                          "ids=1,2", "name=nan", "max-items=3"]) == {
        "step": 5, "ratio": 0.5, "tiny": True, "x": False, "variant": ["SD", "TYPO"], "scenario": "01-Sex",
        "ids": [1, 2], "name": "nan", "max_items": 3}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["step"])


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed package declaring a loader in the tis.benchmarks entry-point group."""
    site = tmp_path / "site"
    dist = site / "tis_extra-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tis-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tis.benchmarks]\nextra-bench = tis_extra_loader:ExtraBench\nsafebench = tis_extra_loader:Hijack\n")
    (site / "tis_extra_loader.py").write_text(
        "from tis.sources.base import Benchmark\nfrom tis.core.types import Sample, TextPart\n"
        "IMPORTED = True\n"
        "class ExtraBench(Benchmark):\n    name = 'extra-bench'\n    group = 'jailbreak'\n    bundled = True\n"
        "    def records(self):\n        yield Sample(id='1', benchmark=self.name, content=(TextPart(text='hi'),))\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(BENCHMARKS, "_entries", dict(BENCHMARKS._entries))
    monkeypatch.setattr(BENCHMARKS, "_entry_points_loaded", False)
    sys.modules.pop("tis_extra_loader", None)
    yield
    sys.modules.pop("tis_extra_loader", None)


def test_entry_points_are_found_lazily_and_cannot_replace_built_ins(plugin):
    assert "extra-bench" not in BENCHMARKS
    assert load_entry_points() == ["extra-bench"]
    assert "tis_extra_loader" not in sys.modules  # discovery imports nothing
    assert BENCHMARKS.entry("safebench").target == "tis.sources.figstep:SafeBench"
    assert [s.id for s in BENCHMARKS.load("extra-bench")().samples()] == ["1"]


def test_an_unknown_name_looks_at_entry_points_first(plugin):
    assert BENCHMARKS.entry("extra-bench").target == "tis_extra_loader:ExtraBench"
    assert "extra-bench" in all_benchmarks().names()


def test_cli_list_info_and_check(tmp_path, capsys):
    assert main(["benchmarks", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LOADERS) and "Images are Achilles' Heel" in out

    assert main(["benchmarks", "info", "hades"]) == 0
    out = capsys.readouterr().out
    assert "step" in out and "default [5]" in out and "data/test-*.parquet" in out and "mean over" in out

    assert main(["benchmarks", "info", "hadez"]) == 2
    assert "Did you mean 'hades'" in capsys.readouterr().err

    root = tmp_path / "vls"
    root.mkdir()
    items = [{"instruction_id": n, "instruction": "q", "image_path": f"imgs/{n}.png", "category": c}
             for n, c in enumerate(["Violent", "Violent", "Privacy"])]
    (root / "data.json").write_text(json.dumps(items))
    for n in range(3):
        write_image(root / f"imgs/{n}.png")
    assert main(["benchmarks", "check", "vlsbench", "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 usable samples" in out and "Violent" in out and "0 problem(s)" in out

    (root / "imgs/2.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["benchmarks", "check", "vlsbench", "--data", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == 2 and report["categories"] == {"Violent": 2}
    [problem] = report["problems"]
    assert problem["file"] == str(root / "imgs/2.png") and problem["record"] == "2" and "cannot be read" in problem["message"]

    assert main(["benchmarks", "check", "vlsbench", "--data", str(root), "--set", "colour=red"]) == 2
    assert "bad option" in capsys.readouterr().err
    assert main(["benchmarks", "check", "vlsbench", "--data", str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err
