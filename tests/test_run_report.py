"""`vaekit report`: one self-contained HTML page of a run (vaekit.report), and the command that writes it.

The page is parsed with html.parser: its sections are there (or left out where they do not apply), every image is
a PNG data URI, nothing points outside the file, and strings from the run are escaped. A headless Chromium opens
it from disk with the network cut off: no page or console errors, every image decoded.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import tiny_config, tiny_text_config
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.io import load_run
from vaekit.report import run_report_html
from vaekit.training.train import load_run_bundle

ALL_DIGITS_SECTIONS = {"configuration", "curves", "samples", "reconstructions", "latent-map", "kl"}


class PageParser(HTMLParser):
    """The section ids, image sources, link targets, inline styles and script tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "href" in attrs:
            self.links.append(attrs["href"])
        if "src" in attrs and tag != "img":
            self.links.append(attrs["src"])
        if "style" in attrs:
            self.styles.append(attrs["style"])
        self.scripts += tag == "script"
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in_style = False


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def check_self_contained(page: str) -> PageParser:
    """Every image a PNG data URI that decodes; no link, source or CSS url() that leaves the file."""
    parsed = parse(page)
    assert parsed.images, "the page shows no image"
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        assert picture.format == "PNG" and min(picture.size) > 10
    assert all(link.startswith("#") for link in parsed.links), parsed.links
    assert not any("url(" in style for style in parsed.styles)
    assert "http://" not in page and "https://" not in page
    return parsed


@pytest.fixture(scope="module")
def digits_page(trained_run) -> str:
    run = load_run(trained_run)
    return run_report_html(run, load_run_bundle(run.config, run.model))


def test_a_digits_report_has_every_section_and_is_self_contained(digits_page):
    parsed = check_self_contained(digits_page)
    assert set(parsed.sections) == ALL_DIGITS_SECTIONS  # no eval.json: no evaluation table
    assert len(parsed.images) == 5  # curves, samples, reconstructions, latent map, KL
    assert parsed.scripts == 0
    for text in ("latent size", "parameters", "best epoch", "bernoulli", "first two principal components"):
        assert text in digits_page


def test_the_same_run_gives_the_same_page(trained_run, digits_page):
    run = load_run(trained_run)
    assert run_report_html(run, load_run_bundle(run.config, run.model)) == digits_page


def test_strings_from_the_run_are_escaped(trained_run):
    run = load_run(trained_run)
    data = load_run_bundle(run.config, run.model)
    run.config.data.root = "<script>alert('x')</script>"
    page = run_report_html(run, data)
    assert "<script" not in page and "&lt;script&gt;" in page


def test_the_evaluation_table_is_there_exactly_when_eval_json_is(writable_run, capsys):
    assert main(["report", str(writable_run)]) == 0
    out = writable_run / "report.html"
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert "evaluation" not in parse(out.read_text()).sections
    assert main(["eval", str(writable_run), "--iw-samples", "5"]) == 0
    assert main(["report", str(writable_run), "--force"]) == 0
    page = out.read_text()
    assert "evaluation" in parse(page).sections
    neg_elbo = json.loads((writable_run / "eval.json").read_text())["neg_elbo"]
    assert "negative ELBO (nats)" in page and f"{neg_elbo:.5g}" in page


def test_a_text_run_shows_sentences(tmp_path):
    run_dir = tmp_path / "text"
    vaekit.fit(tiny_text_config(), run_dir)
    run = load_run(run_dir)
    data = load_run_bundle(run.config, run.model)
    page = run_report_html(run, data)
    parsed = check_self_contained(page)
    assert {"samples", "reconstructions", "latent-map", "kl"} <= set(parsed.sections)
    assert page.count('<pre class="text">') == 2
    from vaekit.text.generate import to_text

    first = to_text(run.model, data.split("test").x[:1])[0]
    import html

    assert html.escape(first) in page and "\u2192" in page  # a test sentence, and the arrow to its reconstruction


def test_a_vqvae_run_has_no_kl_section(tmp_path):
    config = tiny_config(epochs=1)
    config.model.kind = {"name": "vqvae", "codebook_size": 16, "hidden": 8, "blocks": 1, "prior_width": 8,
                         "prior_layers": 1, "prior_heads": 2}
    config.model.network = "conv"
    vaekit.fit(config, tmp_path / "vq")
    run = load_run(tmp_path / "vq")
    parsed = check_self_contained(run_report_html(run, load_run_bundle(run.config, run.model)))
    assert "kl" not in parsed.sections and {"samples", "reconstructions", "latent-map"} <= set(parsed.sections)


def test_a_run_whose_data_are_gone_still_gets_a_report(writable_run, capsys):
    config = json.loads((writable_run / "config.json").read_text())
    config["data"]["name"] = str(writable_run / "gone.csv")
    (writable_run / "config.json").write_text(json.dumps(config))
    assert main(["report", str(writable_run)]) == 0
    err = capsys.readouterr().err.strip()
    assert "gone.csv" in err and len(err.splitlines()) == 1
    parsed = check_self_contained((writable_run / "report.html").read_text())
    # the KL comes from metrics.jsonl then; samples, reconstructions and the map need the data
    assert set(parsed.sections) == {"configuration", "curves", "data", "kl"}


@pytest.mark.parametrize("argv, message", [
    (["--out", "{tmp}/r.png"], "unsupported output type '.png'"),
    (["--out", "{tmp}/exists.html"], "already exists"),
])
def test_bad_outputs_are_refused_in_one_line(trained_run, tmp_path, capsys, argv, message):
    (tmp_path / "exists.html").write_text("mine")
    code = main(["report", str(trained_run), *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "exists.html").read_text() == "mine" and not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("make, message", [(lambda p: p / "missing", "does not exist"),
                                           (lambda p: p, "is not a run folder")])
def test_a_missing_run_is_refused_in_one_line(tmp_path, capsys, make, message):
    code = main(["report", str(make(tmp_path)), "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


# --- a real browser, offline -------------------------------------------------------------------------------------

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_the_page_opens_offline_in_a_browser_without_errors(digits_page, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip)")
    path = tmp_path / "report.html"
    path.write_text(digits_page)
    errors, outside = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(Path(path).as_uri(), wait_until="load")
            widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
            sections = page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        finally:
            browser.close()
    assert not errors, errors
    assert not outside, outside
    assert len(widths) == 5 and all(w > 0 for w in widths), widths
    assert set(sections) == ALL_DIGITS_SECTIONS
