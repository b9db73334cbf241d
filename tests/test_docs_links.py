"""The repository stands on its own: every relative link in README.md and docs/ names a file inside it.

A link to ``../shared/…`` (or to any file that is not in the repository) is broken for whoever clones it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Inline links and images ``[text](target "title")`` and reference definitions ``[name]: target``.
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def relative_links(text: str) -> list[str]:
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    found = INLINE.findall(prose) + REFERENCE.findall(prose)
    return [target for target in found if not EXTERNAL.match(target) and not target.startswith("#")]


def broken_links(document: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in relative_links(document.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (document.parent / path).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    return problems


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_stay_inside_the_repository(document: Path) -> None:
    assert broken_links(document) == []


def test_the_checker_catches_what_it_must(tmp_path: Path) -> None:
    """The check itself can fail: a link out of the tree and one to a missing file are both reported."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "events.md").write_text("# Events\n", encoding="utf-8")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "PROTOCOL.md").write_text("# outside\n", encoding="utf-8")
    sample = (
        "See [the contract](../../shared/PROTOCOL.md), [gone](missing.md#top), [ok](events.md#resume), "
        "[site](https://example.org/x), [anchor](#framing), `[code](../../nowhere.md)`.\n\n"
        "```\n[fenced](../../fenced.md)\n```\n\n"
        "[ref]: ../../elsewhere.md\n"
    )
    document = root / "docs" / "guide.md"
    document.write_text(sample, encoding="utf-8")
    assert broken_links(document, root) == [
        "../../shared/PROTOCOL.md: outside the repository",
        "missing.md#top: no such file",
        "../../elsewhere.md: outside the repository",
    ]


def test_no_source_file_points_at_the_contract_outside_the_repository() -> None:
    """Docstrings and comments name docs/protocol.md, never a file beside the repository."""
    offenders = []
    for folder in ("helpline", "tests", "scripts", "bench"):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or path.suffix not in {".py", ".js", ".html", ".css", ".md", ""}:
                continue
            if path == Path(__file__).resolve() or "results" in path.parts:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if "shared/PROTOCOL.md" in text or re.search(r"(?<![\w/])PROTOCOL\.md", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
