"""Reading the project's Markdown as test_docs.py needs it: fenced blocks, headings,
anchors, links and inline code, from README.md and docs/*.md.

GitHub's rendering is the reference: a fence is three or more backticks or tildes at
the start of a line, an indented code block is four spaces after a blank line, and a
heading's anchor is its text lowercased, without punctuation, spaces made hyphens.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")


@attrs.frozen
class Block:
    """One fenced block: where it is, its language tag, its text, the headings above it."""

    page: str  # "README.md" or "docs/NAME.md"
    line: int  # the opening fence's line, from 1
    fence: str
    tag: str
    text: str
    section: tuple[str, ...]  # the H2 and H3 headings it sits under

    @property
    def id(self) -> str:
        """``page:line:tag``, as the tests name the block."""
        return f"{self.page}:{self.line}:{self.tag or '(no tag)'}"


@attrs.frozen
class Page:
    """One Markdown page, split into its fenced blocks and its prose lines."""

    name: str
    blocks: tuple[Block, ...]
    # (line number, text) of every line outside fenced blocks.
    prose: tuple[tuple[int, str], ...]
    headings: tuple[tuple[int, str], ...]  # (level, text), in order

    def anchors(self) -> set[str]:
        """The anchors GitHub gives this page's headings."""
        seen: dict[str, int] = {}
        out = set()
        for _, text in self.headings:
            slug = slug_of(text)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
        return out

    def section_text(self, heading: str) -> str:
        """The prose under the H2 ``heading``, up to the next H2."""
        lines, inside = [], False
        for _, line in self.prose:
            if line.startswith("## "):
                inside = line[3:].strip() == heading
                continue
            if inside:
                lines.append(line)
        return "\n".join(lines)

    def links(self) -> list[tuple[int, str]]:
        """(line, target) of every Markdown link in the prose, inline code left out."""
        out = []
        for number, line in self.prose:
            for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
                out.append((number, match.group(2)))
        return out

    def inline_code(self) -> list[tuple[int, str]]:
        """(line, text) of every inline code span in the prose."""
        return [
            (number, match.group(2).strip())
            for number, line in self.prose
            for match in _INLINE_CODE.finditer(line)
        ]


def links_in(text: str) -> list[str]:
    """The targets of the Markdown links in ``text``, inline code left out."""
    return [m.group(2) for m in _LINK.finditer(_INLINE_CODE.sub("", text))]


def slug_of(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation dropped,
    spaces made hyphens."""
    text = _LINK.sub(r"\1", heading).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def read_page(repo: Path, name: str) -> Page:
    """Parse ``repo/name``; an unterminated fence is an error."""
    lines = (repo / name).read_text("utf-8").splitlines()
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    headings: list[tuple[int, str]] = []
    section: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            marker, tag = fence.group(1), fence.group(2).strip()
            end = i + 1
            while end < len(lines) and not lines[end].startswith(marker):
                end += 1
            if end == len(lines):
                raise AssertionError(f"{name}:{i + 1}: a fenced block that is never closed")
            blocks.append(
                Block(
                    name, i + 1, marker, tag, "\n".join(lines[i + 1 : end]) + "\n", tuple(section)
                )
            )
            i = end + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            level, text = len(heading.group(1)), heading.group(2)
            headings.append((level, text))
            if level == 2:
                section = [text]
            elif level == 3:
                section = [*section[:1], text]
        prose.append((i + 1, line))
        i += 1
    return Page(name, tuple(blocks), tuple(prose), tuple(headings))


def indented_code(page: Page) -> list[int]:
    """Lines that start an indented code block (four spaces or a tab after a blank line)."""
    out = []
    previous = ""
    for number, line in page.prose:
        if line.strip() and (line.startswith("    ") or line.startswith("\t")):
            if not previous.strip():
                out.append(number)
        previous = line
    return out


def commands(block: Block) -> list[str]:
    """A shell block's commands: continuation lines joined, trailing ``# comments`` cut."""
    out: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line.strip()).strip()
        pending = ""
        line = re.sub(r"\s+#\s.*$", "", line)
        if line and not line.startswith("#"):
            out.append(line)
    assert not pending, f"{block.id}: a command ends with a line continuation"
    return out
