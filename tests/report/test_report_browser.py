"""The report in a real browser (headless Chromium, Debian's `chromium`): model text that carries
<script> and HTML tags is shown as text and never runs, the sample browser renders and paginates,
and a screenshot of the first screen is saved."""

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from run_builder import judged, write_run

from tis.render import write_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless browser tests need Debian's chromium")

ANSWER = ('<script>document.title="PWNED";document.body.setAttribute("data-pwned","script")</script>'
          '<img src=x onerror="document.body.setAttribute(\'data-pwned\',\'onerror\')">'
          '<b id="injected">bold?</b>')
THOUGHT = "</script><script>document.body.setAttribute('data-pwned','thought')</script> fine"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class Dom(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.title = [], [], ""
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    rows = [judged(f"s{i:03d}", i % 3 != 0, i % 4 != 0, category=("Fraud", "Hate")[i % 2], answer=ANSWER,
                   thought=THOUGHT) for i in range(120)]
    base = [judged(f"s{i:03d}", None, i % 5 != 0, category=("Fraud", "Hate")[i % 2]) for i in range(120)]
    # the model with the hostile output first, so the browser's first page shows its samples
    runs = [write_run(tmp / "reason", rows, model="reason-vl"), write_run(tmp / "base", base, model="base-vl")]
    return write_report(runs, tmp / "report.html"), tmp


def test_model_text_with_script_and_tags_is_text_and_nothing_injected_runs(report):
    path, tmp = report
    done = chromium(tmp, "--dump-dom", path.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom(done.stdout)
    # the page's own script ran: it built the first page of the sample browser
    cards = [a for t, a in dom.tags if t == "article" and a.get("class") == "sample"]
    assert len(cards) == 50
    assert any("page 1 of 5" in t for t in dom.text)  # 240 completions, 50 a page
    # nothing from the model ran or became markup
    assert "PWNED" not in dom.title and dom.title.startswith("tis report")
    body = next(a for t, a in dom.tags if t == "body")
    assert "data-pwned" not in body
    assert not [a for t, a in dom.tags if a.get("id") == "injected"]
    assert not [a for t, a in dom.tags if t == "img" and a.get("src") == "x"]
    # ... and it is there, as text
    assert sum(t == ANSWER for t in dom.text) == 50
    assert sum(t == THOUGHT for t in dom.text) == 50


def test_screenshot_of_the_first_screen(report):
    path, tmp = report
    shot = tmp.parent / "report-first-screen.png"  # pytest's base temp folder for this test session
    done = chromium(tmp, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars", path.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 900)
    lo, hi = image.getextrema()
    assert lo < 80 and hi > 200  # text on a light page, not a blank screen
    print(f"\nfirst-screen screenshot: {shot}")
