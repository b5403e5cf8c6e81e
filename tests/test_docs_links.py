"""Every relative link and #anchor of README.md and docs/*.md resolves (tools/check_links.py)."""

from __future__ import annotations

from pathlib import Path

from tools import check_links


def test_every_link_of_the_readme_and_docs_resolves() -> None:
    files = check_links.default_files()
    assert len(files) > 1 and all(f.is_file() for f in files)
    assert check_links.problems(files) == []


def test_broken_files_and_anchors_are_reported_and_good_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Setup\n\n## Setup\n\n<a id='kept'></a>\n")
    (tmp_path / "data.yaml").write_text("x: 1\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Local heading\n\n"
        "[a](other.md) [b](other.md#setup) [c](other.md#setup-1) [d](other.md#kept) [e](#local-heading)\n"
        "[f](data.yaml#L1) [g](https://example.org/nowhere) ![h](other.md)\n\n"
        "| table | cell |\n|---|---|\n| [bad in table](missing.md) | x |\n\n"
        "[bad anchor](other.md#setup-2) [bad local](#nowhere) [bad yaml](data.yaml#x)\n\n"
        "`[not a link](missing.md)`\n\n```\n[not a link either](missing.md)\n```\n"
    )
    found = check_links.problems([page])
    assert [f.split(": ", 1)[1] for f in found] == [
        "missing.md: no such file",
        "other.md#setup-2: no heading or anchor #setup-2 in other.md",
        "#nowhere: no heading or anchor #nowhere in page.md",
        "data.yaml#x: an anchor into a file that is not Markdown",
    ]
    assert check_links.main([str(page)]) == 1
    assert check_links.main([str(tmp_path / "other.md")]) == 0


def test_anchors_follow_githubs_rule() -> None:
    # anchors GitHub gives these headings
    assert check_links.slug("`MAX_*` constants") == "max_-constants"
    assert check_links.slug("Definition of `channel_id`") == "definition-of-channel_id"
    assert check_links.slug("Training data: contamination and languages") == (
        "training-data-contamination-and-languages"
    )
    assert check_links.slug("Fidelity: the protocol checked on a real model") == (
        "fidelity-the-protocol-checked-on-a-real-model"
    )
