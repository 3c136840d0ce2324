"""The README and docs/: the commands the README shows run, and links into a page land on a heading."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\((?P<target>[^)\s#]*)(?:#(?P<anchor>[^)\s]+))?\)")


def readme_python_commands() -> list[str]:
    """The README's one-line `.venv/bin/python ...` commands (in code blocks, comments cut off)."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(".venv/bin/python ")]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lowercase, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return out


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_text().splitlines()) < 250  # the lead's limit for the front door (issue 22)


@pytest.mark.parametrize("command", readme_python_commands())
def test_every_python_command_the_readme_shows_runs(command: str) -> None:
    # `make setup` makes .venv/bin/python; the interpreter running the tests is that one.
    argv = [sys.executable, *shlex.split(command)[1:]]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_readme_shows_python_commands_at_all() -> None:
    assert len(readme_python_commands()) >= 3


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_to_a_section_name_one_of_its_headings(page: Path) -> None:
    for m in LINK.finditer(page.read_text()):
        target, anchor = m["target"], m["anchor"]
        if target.startswith(("http://", "https://")) or not anchor:
            continue
        linked = (page.parent / target).resolve() if target else page
        if linked.exists():  # pages other branches are writing are checked once they are here
            assert anchor in anchors(linked), f"{page.name}: no heading for {target}#{anchor}"


BENCHMARKS = ROOT / "docs" / "benchmarks.md"
# A measured figure: a number, with its unit where it has one (0.9 s, 156 MiB, 74k, 0.003%, 1.05 M).
FIGURE = re.compile(r"\d[\d,]*(?:\.\d+)?(?:\s?(?:min|ms|µs|s|MiB|KiB|%|k|M)(?![\w]))?")
TO_BENCHMARKS = re.compile(r"\[(?P<label>[^\]]+)\]\(docs/benchmarks\.md(?:#[\w-]+)?\)")


def measured_rows() -> list[tuple[str, str]]:
    """The README's "Measured" table as (what, figure) cells."""
    text = README.read_text()
    section = text[text.index("## Measured") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [(what.strip(), figure.strip()) for what, figure in rows[1:]]  # the header row first


def test_the_readme_measures_something() -> None:
    assert len(measured_rows()) >= 5


@pytest.mark.parametrize(("what", "figure"), measured_rows(), ids=lambda c: c[:40])
def test_every_figure_in_the_readme_is_a_link_into_benchmarks_and_stands_there(
    what: str, figure: str
) -> None:
    # One home per figure: the README links to docs/benchmarks.md, where it is written with how it was
    # measured and the load at the time; a figure typed into the README alone drifts from it.
    labels = [m["label"] for m in TO_BENCHMARKS.finditer(figure)]
    assert labels, f"{what}: the figure is not a link into docs/benchmarks.md"
    assert not FIGURE.search(TO_BENCHMARKS.sub("", figure)), f"{what}: a figure outside the link"
    home = BENCHMARKS.read_text()
    for label in labels:
        for part in label.split(";"):  # "0.9 s / 2.8 s / 7.0 s; 0.014 to 0.033 s": two figures
            assert part.strip() in home, f"{what}: {part.strip()!r} is not in docs/benchmarks.md"
