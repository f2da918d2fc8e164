"""HTML / markdown rendering: every section present, figures embedded, missing data says "not measured"."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from seadeploy.reports import plots, write_study_report
from seadeploy.reports.render import FigureItem, Section, Table, format_value, render_html, render_markdown
from seadeploy.reports.sections import build_sections
from seadeploy.reports.study import StudyData

ANCHORS = ["answer", "variants", "latency", "attention-share", "layers", "buffers", "parity", "training", "method"]


class _Sections(HTMLParser):
    """Collects, per <section id=...>, the tags inside it, and every src/href in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.current: str | None = None
        self.links: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)
        if tag == "section":
            self.current = a["id"]
            self.sections[self.current] = []
        elif self.current:
            self.sections[self.current].append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href")]

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()
        if tag == "section":
            self.current = None


def _parse(text: str) -> _Sections:
    p = _Sections()
    p.feed(text)
    assert p.stack == [], f"unclosed tags {p.stack}"
    return p


def test_full_report_has_every_section_with_content(rendered):
    _, paths = rendered
    text = paths["html"].read_text()
    parsed = _parse(text)
    assert list(parsed.sections) == ANCHORS
    for anchor, tags in parsed.sections.items():
        assert {"table", "img", "p"} & set(tags), f"section {anchor} is empty"
    assert "not measured" not in text
    for anchor in ("variants", "latency", "attention-share", "layers", "buffers"):
        assert "img" in parsed.sections[anchor], anchor
    # self-contained: only in-page anchors and data: URIs, and every image is a decodable PNG
    assert all(link.startswith(("#", "data:image/png;base64,")) for link in parsed.links)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4 + 6  # tradeoff, latency, share, buffers; per-layer: 3 variants × 2 backends
    assert all(base64.b64decode(b)[:4] == b"\x89PNG" for b in images)
    assert "<strong>tse</strong> vs <strong>se</strong>" in text


def test_markdown_report_links_written_figures(rendered):
    study, paths = rendered
    tmp_path = paths["md"].parent
    md = paths["md"].read_text()
    for title in [s.title for s in build_sections(study)]:
        assert f"## {title}" in md
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert len(figures) == 10 and all((tmp_path / f).is_file() for f in figures)
    assert "| variant |" in md and "---:" in md
    assert not list(tmp_path.glob(".*.tmp"))


def test_empty_study_says_not_measured_everywhere(tmp_path):
    study = StudyData()
    study.note("latency", "se: profiling failed: onnxruntime crashed")
    text = write_study_report(study, tmp_path)["html"].read_text()
    parsed = _parse(text)
    assert list(parsed.sections) == ANCHORS
    bodies = re.findall(r'<section id="([^"]+)"><h2>[^<]*</h2>\s*<p class="missing">([^<]*)</p>', text)
    assert [a for a, _ in bodies] == ANCHORS
    assert all(reason.startswith("not measured: ") and len(reason) > len("not measured: ") for _, reason in bodies)
    assert "not measured: se: profiling failed: onnxruntime crashed" in text
    assert "<img" not in text


def test_partial_study_notes_missing_parts(study, tmp_path):
    study.buffer_blocks, study.buffer_totals = pd.DataFrame(), pd.DataFrame()
    study.note("buffer_blocks", "tse: no buffers.json")
    study.latency = study.latency[study.latency["variant"] != "tse"]
    study.note("latency", "tse: latency timed out")
    text = write_study_report(study, tmp_path)["html"].read_text()
    parsed = _parse(text)
    assert "not measured: tse: no buffers.json" in text
    assert "img" not in parsed.sections["buffers"]
    assert "table" in parsed.sections["latency"] and "not measured: tse: latency timed out" in text
    assert "n/a" in text  # the tse latency cells of the comparison table


def test_section_without_items_or_reason_is_never_blank():
    html = render_html("t", [Section("Empty one")])
    assert "not measured: no data was produced for this section" in html
    md = render_markdown("t", [Section("Empty one", missing="needs a GPU")])
    assert "_not measured: needs a GPU_" in md


def test_html_escapes_text_and_cells():
    table = Table(pd.DataFrame({"name": ["<script>"], "v": [1.23456]}), caption="a <b> caption")
    html = render_html("<t>", [Section("S", items=["x < y & **bold**", table])])
    assert "<script>" not in html and "&lt;script&gt;" in html and "<strong>bold</strong>" in html
    assert "<td>1.235</td>" in html


@pytest.mark.parametrize(("value", "text"), [(float("nan"), "n/a"), (None, "n/a"), (True, "yes"), (12345.6, "12,346"),
                                             (0.0123456, "0.01235"), (97.2222, "97.22"), ("tse", "tse")])
def test_format_value(value, text):
    assert format_value(value) == text


def test_figure_item_png_is_cached(study):
    item = FigureItem(plots.plot_latency_vs_batch(study.latency), "lat")
    assert item.png is item.png


def test_warnings_are_shown_apart_from_missing_data(study):
    study.warnings["parity"] = ["se: validate: ort/int8/data: top-1 agreement 98.89% < 99.00%"]
    section = next(s for s in build_sections(study) if s.anchor == "parity")
    html = render_html("t", [section])
    assert '<p class="warning">warning: se: validate: ort/int8/data: top-1 agreement 98.89% &lt; 99.00%</p>' in html
    assert "not measured" not in html
