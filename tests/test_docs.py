"""The documentation stays true: the generated command reference (docs/commands.md) matches `--help`,
README stays short, and every relative link in README.md, CHANGELOG.md and docs/*.md points to a file
(and heading) that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 260


@pytest.fixture(scope="module")
def gen_commands():
    spec = importlib.util.spec_from_file_location("gen_commands", DOCS / "gen_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(gen_commands) -> str:
    return gen_commands.render()


def test_command_reference_matches_help(gen_commands, rendered):
    problems = gen_commands.check(DOCS / "commands.md", expected=rendered)
    assert not problems, ("docs/commands.md differs from the CLI's --help: run `python docs/gen_commands.py` "
                          "and commit the result.\n" + "\n".join(problems))


def test_command_reference_covers_every_command(rendered):
    titles = re.findall(r"(?m)^## (attngan.*)$", rendered)
    for command in ["attngan", "attngan prep cub", "attngan prep coco", "attngan prep folder",
                    "attngan prep shapes", "attngan pretrain", "attngan train", "attngan sample",
                    "attngan attend", "attngan eval", "attngan demo", "attngan import official",
                    "attngan runs", "attngan plot", "attngan serve"]:
        assert command in titles
    assert "\x1b" not in rendered and "│" not in rendered and "╭" not in rendered  # no ANSI, no Rich boxes


def test_check_names_the_stale_command(gen_commands, rendered, tmp_path):
    titles = re.findall(r"(?m)^## (attngan.*)$", rendered)
    first, last = titles[0], titles[-1]
    stale = tmp_path / "commands.md"
    stale.write_text(rendered.replace("Usage: attngan [OPTIONS]", "Usage: attngan [OPTS]", 1)
                     .replace(f"## {last}\n", f"## {last}\n\nhand-edited\n"), encoding="utf-8")
    problems = gen_commands.check(stale, expected=rendered)
    assert [p.split(":")[0] for p in problems] == [first, last]
    stale.write_text(rendered.replace(f"## {last}\n", "## attngan gone\n"), encoding="utf-8")
    problems = gen_commands.check(stale, expected=rendered)
    assert [p.split(":")[0] for p in problems] == [last, "attngan gone"]
    stale.write_text(rendered, encoding="utf-8")
    assert gen_commands.check(stale, expected=rendered) == []


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_readme_keeps_the_test_command():
    # .ci/run and the CI parse README for this exact line
    assert 'pip install -e ".[dev]" && python -m pytest\n' in (REPO / "README.md").read_text(encoding="utf-8")


_FENCED = re.compile(r"(?ms)^(`{3,}|~{3,}).*?^\1[ \t]*$")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_HEADING = re.compile(r"(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")


def _relative_links(markdown: str) -> list[str]:
    """Link and image targets outside code that are not URLs (``#anchor`` alone included)."""
    text = _INLINE_CODE.sub("", _FENCED.sub("", markdown))
    targets = _LINK.findall(text) + _HTML.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def _anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub makes: lowercase, punctuation dropped, spaces to hyphens, -N for repeats."""
    anchors: set[str] = set()
    for heading in _HEADING.findall(_FENCED.sub("", markdown)):
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
        anchor = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        candidate, n = anchor, 0
        while candidate in anchors:
            n += 1
            candidate = f"{anchor}-{n}"
        anchors.add(candidate)
    return anchors


PAGES = ["README.md", "CHANGELOG.md"] + [f"docs/{p.name}" for p in sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    path = REPO / page
    missing = []
    for target in _relative_links(path.read_text(encoding="utf-8")):
        file, _, fragment = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists():
            missing.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked.read_text(encoding="utf-8")):
            missing.append(target)
    assert not missing, f"{page} links to files or headings that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_index():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {t.split("#", 1)[0] for t in _relative_links(index)}
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"
