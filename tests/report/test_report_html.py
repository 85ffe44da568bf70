"""The HTML report, checked by parsing it: sections, numbers, plots, thumbnails, escaping, no requests."""

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from PIL import Image
from run_builder import SAFE, UNSAFE, judged, row, write_run

from tis.render import write_report
from tis.render.build import script_json

HOSTILE = '</script><script>document.title="PWNED"</script><b id="bold">x</b>'


class Page(HTMLParser):
    """Elements (tag, attrs, text inside) in document order, and every script's raw text."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.elements, self.scripts, self._stack = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        if tag not in ("meta", "br", "img", "input", "link", "hr", "wbr"):  # HTML void elements
            self._stack.append(el)

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self._stack:
            el["text"] += data
        if self._stack and self._stack[-1]["tag"] == "script":
            self.scripts.append((self._stack[-1]["attrs"], data))

    def find(self, tag, **attrs):
        return [e for e in self.elements if e["tag"] == tag and all(e["attrs"].get(k) == v for k, v in attrs.items())]


@pytest.fixture
def two_runs(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (800, 600), "navy").save(images / "a.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(images / "b.png")
    (images / "broken.png").write_bytes(b"not an image")
    img = [{"path": str(images / "a.png"), "sha256": "sha-a"}]
    base, reason = [], []
    for i in range(12):
        cat = "<i>Hate</i> & more" if i % 2 else "Fraud"
        base.append(judged(f"s{i}", None, i != 0, category=cat, images=img, benchmark="figstep"))
        reason.append(judged(f"s{i}", i % 3 != 0, i % 4 != 0, category=cat, images=img, benchmark="figstep",
                             thought="first I consider\u2028the request", answer=HOSTILE))
    reason.append(row("x1", benchmark="figstep", category="Fraud",
                      images=[{"path": str(images / "b.png"), "sha256": "sha-b"},
                              {"path": str(images / "broken.png"), "sha256": "sha-broken"}],
                      verdicts={"harm": {"answer": UNSAFE}, "refusal": {"answer": SAFE}}))
    a = write_run(tmp_path / "base", base, model="qwen-vl-7b", benchmark="figstep")
    b = write_run(tmp_path / "reason", reason, model="r1-vl-7b", benchmark="figstep", judges=("harm", "refusal"))
    return a, b


def test_report_sections_numbers_and_plots(two_runs, tmp_path):
    path = write_report(list(two_runs), tmp_path / "out" / "report.html")
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    assert [e["attrs"]["id"] for e in page.find("section")] == ["summary", "plots", "compare", "samples"]
    summary_rows = [e["text"] for e in page.elements if e["tag"] == "tr"][1:3]
    # baseline: 1 unsafe of 12 answers; reasoning model: i % 4 == 0 -> 3 of 12, plus x1 unsafe -> 4 of 13
    assert "qwen-vl-7b" in summary_rows[0] and "ASR ↓" in summary_rows[0] and "8.3%" in summary_rows[0]
    assert "r1-vl-7b" in summary_rows[1] and "30.8%" in summary_rows[1]
    titles = [e["text"] for e in page.find("svg")]
    assert any("figstep: ASR of the answer (lower is better)" in t for t in titles)
    assert any("r1-vl-7b · figstep (harm)" in t and "self-correction" in t for t in titles)
    assert any("r1-vl-7b − qwen-vl-7b" in t for t in titles)
    assert any("by thought length" in t for t in titles)
    # the dataset's category name is text everywhere, never markup
    assert not page.find("i") and any("<i>Hate</i> & more" in e["text"] for e in page.find("td"))

    numbers = json.loads((tmp_path / "out" / "report.summary.json").read_text())
    reason = numbers["runs"][1]["summary"]["benchmarks"]["figstep"]["overall"]
    assert reason["headline"]["k"] == 4 and reason["headline"]["n"] == 13
    answer = numbers["comparison"]["comparisons"][0]["benchmarks"]["figstep"]["overall"]["answer"]
    assert answer["n"] == 12 and (answer["worse"], answer["better"]) == (2, 0)
    assert numbers["images"] == {"images": 3, "thumbnails": 2, "unreadable": 1, "over_limit": 0, "limit": 5000}


def test_sample_data_is_inert_json_and_images_are_thumbnails(two_runs, tmp_path):
    html = write_report(list(two_runs), tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    blocks = page.find("script", type="application/json")
    assert len(blocks) == 1 and len(page.find("script")) == 2  # the hostile text opened no script element
    raw = next(text for attrs, text in page.scripts if attrs.get("type") == "application/json")
    assert not re.search("[<>&\u2028\u2029]", raw)
    data = json.loads(raw)
    assert len(data["samples"]) == 25 and data["runs"][0]["label"] == "qwen-vl-7b"
    hostile = [s for s in data["samples"] if s["a"] == HOSTILE]
    assert len(hostile) == 12 and "\u2028" in hostile[0]["t"]
    flipped = {s["id"]: s["x"] for s in data["samples"] if s["r"] == 1 and s["x"]}
    assert flipped == {"s4": ["worse"], "s8": ["worse"]}  # s0 is unsafe in both runs
    assert {s["id"] for s in data["samples"] if s["r"] == 0 and s["x"]} == {"s4", "s8"}
    x1 = next(s for s in data["samples"] if s["id"] == "x1")
    assert x1["d"] == 1 and x1["v"][0][:3] == ["harm", "answer", "unsafe"]  # judges disagree
    # each image once, as a small JPEG; the unreadable one only by path
    assert set(data["images"]) == {"sha-a", "sha-b"}
    thumb = Image.open(__import__("io").BytesIO(base64.b64decode(data["images"]["sha-a"].split(",", 1)[1])))
    assert thumb.format == "JPEG" and max(thumb.size) == 160
    assert html.count(data["images"]["sha-a"]) == 1


def test_page_is_self_contained_and_only_its_own_script_may_run(two_runs, tmp_path):
    html = write_report(list(two_runs), tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(html)
    for e in page.elements:
        for name in ("src", "href"):
            value = e["attrs"].get(name) or ""
            assert not value or value.startswith(("#", "data:")), (e["tag"], value)
    assert not page.find("link") and not page.find("iframe")
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})[0]["attrs"]["content"]
    code = next(text for attrs, text in page.scripts if not attrs)
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp and "img-src data:" in csp


def test_default_output_and_cli(two_runs, capsys):
    import argparse

    from tis.cli.report import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["report", str(two_runs[1]), "--max-thumbnails", "0"])
    assert args.func(args) == 0
    path = two_runs[1] / "report.html"
    assert capsys.readouterr().out.strip() == f"report: {path}"
    data = json.loads(next(t for a, t in Page(path.read_text()).scripts if a.get("type") == "application/json"))
    assert data["images"] == {} and data["samples"][0]["im"][0][1].endswith("a.png")  # shown by path


def test_script_json_escapes_what_could_end_the_block():
    text = script_json({"a": "</script><!-- & \u2028\u2029 >"})
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"a": "</script><!-- & \u2028\u2029 >"}
