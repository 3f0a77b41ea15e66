"""README.md and docs/*.md render as written: every code fence closes on a line
of its own, and every relative link names a file (and heading) that exists."""

from __future__ import annotations

import re
import unicodedata
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fence_problems(text: str) -> list[str]:
    """A fence that never closes, or a line inside a fence that starts with the
    fence's marker followed by text (meant to close it, but it cannot: a
    closing fence stands alone, so everything after it is swallowed)."""
    lines = text.splitlines()
    problems = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        start, end = token.map
        marker = re.match(r"\s*(`{3,}|~{3,})", lines[start]).group(1)
        closing = re.compile(rf"\s{{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        if end > len(lines) or not closing.match(lines[end - 1]) or end - 1 == start:
            problems.append(f"line {start + 1}: this fence never closes")
        for number in range(start + 1, end - 1):
            if lines[number].lstrip().startswith(marker) and lines[number].strip() != marker:
                problems.append(
                    f"line {number + 1}: a closing fence must be alone on its line"
                    f" ({lines[number].strip()[:40]!r} does not close the fence of line"
                    f" {start + 1})"
                )
    return problems


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped,
    spaces as hyphens."""
    kept = "".join(c for c in heading.lower() if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    tokens = MarkdownIt("commonmark").parse(path.read_text())
    for heading, inline in pairwise(tokens):
        if heading.type == "heading_open":
            text = "".join(c.content for c in inline.children or () if c.type != "softbreak")
            slug, n = github_slug(text), 1
            while slug in found:  # GitHub numbers repeated headings
                slug, n = f"{github_slug(text)}-{n}", n + 1
            found.add(slug)
    return found


def links(text: str) -> list[str]:
    found = []
    for token in MarkdownIt("commonmark").parse(text):
        for child in token.children or ():
            if child.type == "link_open":
                found.append(str(child.attrs["href"]))
    return found


def link_problems(path: Path) -> list[str]:
    problems = []
    for href in links(path.read_text()):
        url = urlsplit(href)
        if url.scheme or url.netloc:
            continue  # outside this repository: not checked (no network here)
        target = (path.parent / unquote(url.path)).resolve() if url.path else path
        if not target.exists():
            problems.append(f"{href}: no such file")
        elif url.fragment and target.suffix == ".md" and url.fragment not in anchors(target):
            problems.append(f"{href}: no heading with that anchor in {target.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_fence_closes_on_a_line_of_its_own(page):
    assert fence_problems(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_names_a_file_and_heading_that_exist(page):
    assert link_problems(page) == []


def test_the_checker_finds_a_fence_closed_after_text_and_one_never_closed():
    swallowed = "intro\n\n```bash\nmake run\n``` and then text\n\n## Later\n"
    assert any("alone on its line" in p for p in fence_problems(swallowed))
    assert any("never closes" in p for p in fence_problems(swallowed))
    assert fence_problems("```bash\nmake run\n```\n\n````\n```\n````\n") == []


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## What is verified, and what not\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#what-is-verified-and-what-not) [self](#title) [web](https://example.com)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere)\n\n# Title\n"
    )
    assert link_problems(page) == [
        "missing.md: no such file",
        "other.md#nowhere: no heading with that anchor in other.md",
    ]


def test_the_quick_start_is_one_fenced_block_of_make_run_and_make_test():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    tokens = MarkdownIt("commonmark").parse(section)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1
    assert fences[0].content.split("\n") == ["make run", "make test", ""]
