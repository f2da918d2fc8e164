"""Render report sections to a self-contained HTML page and to markdown.

A report is a list of :class:`Section` objects holding paragraphs (``str``), :class:`Table` and
:class:`FigureItem` items. A section without content says ``not measured: <reason>`` explicitly, so no
section is ever empty. The HTML embeds every figure as a base64 PNG and every table as HTML, with
inline CSS: one file that opens anywhere. The markdown links PNG files written to ``figures/``.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from seadeploy.fileio import atomic_path, write_text
from seadeploy.reports.plots import figure_png
from seadeploy.runfolder import REPORT_HTML, REPORT_MD

NOT_MEASURED = "not measured"
WARNING = "warning"


@dataclasses.dataclass
class Table:
    """A frame to show; ``headers`` renames columns for display, ``caption`` goes above it."""

    frame: pd.DataFrame
    caption: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FigureItem:
    """A figure to embed; ``name`` is its PNG file stem in the markdown's ``figures/`` folder."""

    figure: Figure
    name: str
    caption: str = ""
    _png: bytes | None = dataclasses.field(default=None, repr=False)

    @property
    def png(self) -> bytes:
        if self._png is None:
            self._png = figure_png(self.figure)
        return self._png


Item = str | Table | FigureItem


@dataclasses.dataclass
class Section:
    """One report section: items to show, or ``missing`` = why there is nothing to show."""

    title: str
    items: list[Item] = dataclasses.field(default_factory=list)
    missing: str | None = None
    anchor: str = ""

    def __post_init__(self) -> None:
        if not self.anchor:
            self.anchor = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"

    @property
    def empty(self) -> bool:
        return not self.items

    def missing_text(self) -> str:
        return f"{NOT_MEASURED}: {self.missing or 'no data was produced for this section'}"


def format_value(value: object) -> str:
    """Display text of one cell: ``n/a`` for missing, 4 significant digits, thousands separators above 10⁴."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value)
        if 0.999 <= abs(v) < 1.0:  # cosine similarities and agreements: show how close to 1
            return f"{v:.6f}"
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    if hasattr(value, "item"):
        return format_value(value.item())
    return str(value)


def _cells(table: Table) -> tuple[list[str], list[list[str]]]:
    df = table.frame
    heads = [table.headers.get(str(c), str(c)) for c in df.columns]
    rows = [[format_value(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return heads, rows


_INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>")]


def _inline_html(text: str) -> str:
    out = html.escape(text)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _table_html(table: Table) -> str:
    heads, rows = _cells(table)
    cap = f"<caption>{_inline_html(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    if not rows:
        body = f'<tr><td colspan="{max(1, len(heads))}" class="missing">{NOT_MEASURED}: empty table</td></tr>'
    return f'<table class="data">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _item_html(item: Item) -> str:
    if isinstance(item, Table):
        return _table_html(item)
    if isinstance(item, FigureItem):
        data = base64.b64encode(item.png).decode("ascii")
        cap = f"<figcaption>{_inline_html(item.caption)}</figcaption>" if item.caption else ""
        alt = html.escape(item.caption or item.name, quote=True)
        return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'
    text = str(item)
    cls = ' class="missing"' if text.startswith(NOT_MEASURED) else ' class="warning"' if text.startswith(WARNING) else ""
    return f"<p{cls}>{_inline_html(text)}</p>"


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1180px;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.subtitle{color:#666;margin-top:0} nav ol{columns:2;font-size:.95rem}
table.data{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.86rem}
table.data caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
table.data th,table.data td{border:1px solid #d6d6d6;padding:.25rem .55rem;text-align:right}
table.data th{background:#f3f5f8} table.data td:first-child,table.data th:first-child{text-align:left}
table.data tbody tr:nth-child(even){background:#fafafa}
figure{margin:.8rem 0 1.4rem} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.88rem}
.missing{color:#8a4b00;background:#fff4e5;border-left:4px solid #f0a040;padding:.35rem .7rem}
.warning{color:#7a1010;background:#fdecec;border-left:4px solid #d64545;padding:.35rem .7rem}
code{background:#f2f2f2;padding:0 .2rem;border-radius:3px}
"""


def render_html(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """A complete, self-contained HTML document (inline CSS, base64 PNG figures, no external links)."""
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="subtitle">{_inline_html(subtitle)}</p>')
    parts.append(f"<nav><ol>{toc}</ol></nav>")
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        if s.empty:
            parts.append(f'<p class="missing">{html.escape(s.missing_text())}</p>')
        parts += [_item_html(i) for i in s.items]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_md(table: Table) -> str:
    # Hand-written pipe table: DataFrame.to_markdown needs the optional `tabulate` package.
    heads, rows = _cells(table)
    lines = [f"**{table.caption}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md_escape(h) for h in heads) + " |")
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(heads))) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    if not rows:
        lines.append(f"| {NOT_MEASURED}: empty table |" + " |" * (len(heads) - 1))
    return "\n".join(lines)


def render_markdown(title: str, sections: Sequence[Section], subtitle: str = "", figure_dir: str = "figures") -> str:
    """Markdown text; figures are referenced as ``<figure_dir>/<name>.png`` (see :func:`write_report`)."""
    out = [f"# {title}", ""]
    if subtitle:
        out += [subtitle, ""]
    out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(sections, 1)] + [""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.empty:
            out += [f"_{s.missing_text()}_", ""]
        for item in s.items:
            if isinstance(item, Table):
                out += [_table_md(item), ""]
            elif isinstance(item, FigureItem):
                out += [f"![{item.caption or item.name}]({figure_dir}/{item.name}.png)", ""]
                if item.caption:
                    out += [f"_{item.caption}_", ""]
            else:
                out += [str(item), ""]
    return "\n".join(out)


def write_report(out_dir: str | Path, title: str, sections: Sequence[Section], subtitle: str = "") -> dict[str, Path]:
    """Write ``report.html`` (self-contained), ``report.md`` and ``figures/*.png`` atomically into ``out_dir``."""
    out = Path(out_dir)
    paths: dict[str, Path] = {}
    for s in sections:
        for item in s.items:
            if isinstance(item, FigureItem):
                with atomic_path(out / "figures" / f"{item.name}.png") as tmp:
                    tmp.write_bytes(item.png)
    paths["html"] = write_text(out / REPORT_HTML, render_html(title, sections, subtitle))
    paths["md"] = write_text(out / REPORT_MD, render_markdown(title, sections, subtitle))
    return paths
