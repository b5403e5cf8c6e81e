"""A table as cells (`Grid`), rendered to Markdown or LaTeX with every text escaped.

The score, statistics and data tables (tablegen.py, data_tables.py) all build Grids; only this
module knows the two output formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tabulate import tabulate

from core.errors import one_line

Fmt = Literal["md", "latex"]
REPORTED_MARK = "†"  # a value the source table reports, with no result here
LIMITED_MARK = "‡"  # partial evidence: never bold, never judged as a full-set score


@dataclass
class Cell:
    text: str
    value: float | None = None
    bold: bool = False
    mark: str = ""


@dataclass
class Grid:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"\ensuremath{\pm}",  # not in pdflatex's default utf8 set in every setup
    "Δ": r"\ensuremath{\Delta}",  # claims quote the abstract's "Δ11%"
}
LATEX_MARKS = {REPORTED_MARK: r"\textsuperscript{\dag}", LIMITED_MARK: r"\textsuperscript{\ddag}"}


MD_SPECIALS = "\\`*_[]<>|#"


def md_escape(text: str) -> str:
    """Backslash-escape Markdown's active characters (a folder name must not become a link or HTML)."""
    return "".join(f"\\{ch}" if ch in MD_SPECIALS else ch for ch in text)


def latex_escape(text: str) -> str:
    out = "".join(LATEX_SPECIALS.get(ch, ch) for ch in one_line(text))
    for mark, tex in LATEX_MARKS.items():
        out = out.replace(mark, tex)
    return out.replace("–", "--")


def _cell(cell: Cell, fmt: Fmt) -> str:
    if fmt == "md":  # one line, and a `|` in a path must not split the table's row
        text = one_line(cell.text).replace("|", "\\|") + cell.mark
        return f"**{text}**" if cell.bold else text
    text = latex_escape(cell.text) + LATEX_MARKS.get(cell.mark, "")
    return rf"\textbf{{{text}}}" if cell.bold else text


def render(grid: Grid, fmt: Fmt, level: int = 2) -> str:
    body = [[_cell(c, fmt) for c in row] for row in grid.rows]
    if fmt == "md":
        table = tabulate(body, grid.headers, tablefmt="github", disable_numparse=True)
        notes = "".join(f"\n\n{n}" for n in grid.notes)
        return f"{'#' * level} {grid.title}\n\n{table}{notes}\n"
    headers = [latex_escape(h) for h in grid.headers]
    table = tabulate(body, headers, tablefmt="latex_raw", disable_numparse=True)
    for rule in (r"\toprule", r"\midrule"):
        table = table.replace(r"\hline", rule, 1)
    table = table.replace(r"\hline", r"\bottomrule", 1)
    notes = "".join(f"\n\\par{{\\footnotesize {latex_escape(n)}}}" for n in grid.notes)
    return (
        "\\begin{table}[ht]\n\\centering\n\\small\n"
        # \caption* (package caption): the titles carry the paper's own numbers ("Table 3: ..."), so
        # LaTeX must not number them again
        f"\\caption*{{{latex_escape(grid.title)}}}\n{table}\n{notes}\n\\end{{table}}\n"
    )
