"""Check that every relative link and #anchor in README.md and docs/*.md resolves, offline.

`python tools/check_links.py [FILE.md ...]` prints one line per broken link (file:line: target: why)
and exits 1 if there is any. Links with a scheme (https:, mailto:) are not fetched.

markdown-it-py parses the files (links inside code are not links; tables, images and raw HTML
`href`/`src` are); the anchor rule is GitHub's, a few lines here because the maintained checkers
(lychee, mdlinkcheck) would add a dependency the test environment does not have.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[1]
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
LINE_ANCHOR = re.compile(r"L\d+(-L\d+)?")  # GitHub's line anchors into any file


def default_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def _kept(c: str) -> bool:
    return c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case; letters, marks, numbers, `_`, `-` and spaces kept; spaces -> -."""
    return "".join(c for c in text.lower() if _kept(c)).replace(" ", "-")


def _text(inline: Token) -> str:
    return "".join(t.content for t in inline.children or () if t.type in ("text", "code_inline"))


def anchors(path: Path) -> set[str]:
    """Every #anchor GitHub gives the file: heading slugs (repeats numbered -1, -2, …) and <a id/name>."""
    tokens = _parser().parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            base = slug(_text(tokens[i + 1]))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        elif tok.type in ("html_block", "html_inline"):
            found.update(HTML_ANCHOR.findall(tok.content))
        for child in tok.children or ():
            if child.type == "html_inline":
                found.update(HTML_ANCHOR.findall(child.content))
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every link and image in the file, code spans and blocks excluded."""
    for tok in _parser().parse(path.read_text(encoding="utf-8")):
        line = tok.map[0] + 1 if tok.map else 0
        if tok.type == "html_block":
            yield from ((line, t) for t in HTML_LINK.findall(tok.content))
        for child in tok.children or ():
            if child.type == "link_open":
                yield line, str(child.attrs["href"])
            elif child.type == "image":
                yield line, str(child.attrs["src"])
            elif child.type == "html_inline":
                yield from ((line, t) for t in HTML_LINK.findall(child.content))


def problems(files: list[Path]) -> list[str]:
    cache: dict[Path, set[str]] = {}
    out = []
    for md in files:
        for line, target in links(md):
            parts = urlsplit(target)
            if parts.scheme or target.startswith("//"):
                continue  # external: not checked offline
            dest = (md.parent / unquote(parts.path)).resolve() if parts.path else md.resolve()
            why = None
            if not dest.exists():
                why = "no such file"
            elif parts.fragment:
                frag = unquote(parts.fragment)
                if dest.suffix.lower() == ".md":
                    if frag not in cache.setdefault(dest, anchors(dest) if dest.is_file() else set()):
                        why = f"no heading or anchor #{frag} in {dest.name}"
                elif not LINE_ANCHOR.fullmatch(frag):
                    why = "an anchor into a file that is not Markdown"
            if why:
                shown = md.relative_to(ROOT) if md.is_relative_to(ROOT) else md
                out.append(f"{shown}:{line}: {target}: {why}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    files = [Path(a).resolve() for a in args] or default_files()
    found = problems(files)
    for line in found:
        print(line)
    print(f"check_links: {len(files)} files, {len(found)} broken links", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
