"""SOURCES.md pins every official repository that a citation names, each at one whole commit.

A citation names a repository (`owner/name`) and then, before the next repository or paragraph
and within 160 characters, a file and a line of it: "(hongxin001/JoCoR): ... `main.py` l.63";
or it pins a repository to a commit: `owner/name@abc1234`, "owner/name at abc1234", "owner/name,
commit abc1234". Every repository a citation names must be a row of SOURCES.md, a pinned commit
must be (a prefix of) the row's commit, and the row's commit must be written out whole, so
`file l.N` means one file at one commit. A file that cites lines must name where they come from:
a repository of the table or the method whose row it is.

Offline: this reads only this checkout (docstrings, comments, suites, tests, golden files), never
the official repositories, the network or ../shared. Whether the lines are the right ones is
checked by reading the official code at the pinned commit, which CI cannot do.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("methods", "nlbench", "data", "benchmarks", "tests", "scripts")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".json", ".sh", ".toml"}
MADE_UP = {"someone/official"}
"""Repositories that are test data, not sources (tests/test_reproductions.py feeds one in)."""

_PATH = re.compile(r"(?<![\w./@-])[A-Za-z0-9][\w.-]*(?:/[\w.-]+)+")
_FILE = re.compile(
    r"\.(?:py|json|ya?ml|md|txt|sh|csv|npz|npy|pth|pt|tar|gz|log|pid|out|jpe?g|png|html)$"
)
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,38}$")  # two characters at least: not `u/v`
_PIN = re.compile(r"(?:@|\s+at\s+|,?\s+commit\s+)([0-9a-f]{7,40})\b")
_LINE = re.compile(r"\bl\.\s?\d")
_CITED_LINE = re.compile(r"[\w-]+\.(?:py|json|ya?ml|sh)\b.*?\bl\.\s?\d", re.DOTALL)
_PARAGRAPH_END = re.compile(r"\n[ \t]*#?[ \t]*\n")
_WINDOW = 160


@cache
def sources() -> dict[str, tuple[str, str]]:
    """SOURCES.md's table: repository -> (method or part, commit read)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in (ROOT / "SOURCES.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or set(cells[2]) <= set("-: "):
            continue
        if cells[1] == "repository":  # the header
            continue
        part, repository, commit = cells
        assert repository not in rows, f"SOURCES.md lists {repository} twice"
        rows[repository] = (part, commit)
    return rows


def scanned_files() -> list[Path]:
    """Where citations live: the top-level notes but SOURCES.md, and every text file of the
    code, suites, tests and scripts but this one (its examples are not citations)."""
    files = [p for p in ROOT.glob("*.md") if p.name != "SOURCES.md"]
    for folder in SCANNED:
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return sorted(p for p in files if p.resolve() != Path(__file__).resolve())


def repository_mentions(text: str) -> list[tuple[int, str, str | None, str]]:
    """(offset, owner/name, pinned commit or None, the text after it) for each two-part path with
    two characters a part at least that is not a file (`utils/funcs.py` is a file of a repository,
    not one; `1/T` is a fraction)."""
    found = []
    for match in _PATH.finditer(text):
        token = match.group().rstrip(".")
        parts = token.split("/")
        if (
            len(parts) != 2
            or len(parts[1]) < 2
            or _FILE.search(token)
            or not _OWNER.match(parts[0])
        ):
            continue
        pin = _PIN.match(text, match.end())
        found.append((match.start(), token, pin.group(1) if pin else None, match.end()))
    mentions = []
    for i, (start, token, pin, end) in enumerate(found):
        stop = found[i + 1][0] if i + 1 < len(found) else len(text)
        after = _PARAGRAPH_END.split(text[end : min(stop, end + _WINDOW)])[0]
        mentions.append((start, token, pin, after))
    return mentions


@cache
def citations() -> list[tuple[str, str, str | None]]:
    """(where, owner/name, pinned commit or None) for every repository a citation names: pinned
    to a commit, or followed by a file of it and a line (`main.py l.63`; see the module)."""
    cited = []
    for path in scanned_files():
        text = path.read_text(errors="replace")
        for start, token, pin, after in repository_mentions(text):
            if pin is None and not _CITED_LINE.search(after):
                continue
            where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, start) + 1}"
            cited.append((where, token, pin))
    return cited


def test_every_row_pins_one_repository_at_a_whole_commit():
    rows = sources()
    assert len(rows) >= 10, "SOURCES.md's table was not found or lost its rows"
    for repository, (_, commit) in rows.items():
        owner, _, name = repository.partition("/")
        assert _OWNER.match(owner) and re.fullmatch(r"[\w.-]+", name), (
            f"SOURCES.md: '{repository}' is not an owner/name of a repository"
        )
        assert re.fullmatch(r"[0-9a-f]{40}", commit), (
            f"SOURCES.md: {repository}'s commit '{commit}' is not 40 hex digits: write it out whole"
        )


def test_every_cited_repository_is_in_sources():
    cited = citations()
    assert len(cited) >= 30, "the scan found too few citations: has the citation form changed?"
    missing = [f"{where}: {repository}" for where, repository, _ in cited
               if repository not in sources() and repository not in MADE_UP]  # fmt: skip
    assert not missing, "cited but not in SOURCES.md's table:\n" + "\n".join(missing)


def test_a_pinned_commit_is_the_commit_read():
    wrong = []
    for where, repository, pin in citations():
        if pin is None or repository not in sources():
            continue
        commit = sources()[repository][1]
        if not commit.startswith(pin):
            wrong.append(f"{where}: {repository} at {pin}, SOURCES.md has {commit}")
    assert not wrong, "\n".join(wrong)


def test_every_row_is_cited():
    cited = {repository for _, repository, _ in citations()}
    unused = sorted(set(sources()) - cited)
    assert not unused, f"SOURCES.md rows no citation names (drop them or cite them): {unused}"


def test_official_reference_runs_name_the_commit_read():
    """A suite's `reference:` runs of the official code name a row's repository and commit."""
    checked = 0
    for path in sorted((ROOT / "benchmarks").glob("*.yaml")):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("reference") or []:
            repository, commit = entry.get("repository"), str(entry.get("commit"))
            assert repository in sources(), f"{path.name}: reference {repository} not in SOURCES.md"
            assert commit == sources()[repository][1], (
                f"{path.name}: reference {repository} at {commit}, SOURCES.md has "
                f"{sources()[repository][1]}"
            )
            checked += 1
    assert checked, "no suite has official reference runs any more: drop this test"


def _source_names() -> set[str]:
    """What may name a row: its repository, the repository's name, or the row's method."""
    names = set()
    for repository, (part, _) in sources().items():
        names |= {repository, repository.split("/")[1]}
        method = re.match(r"[A-Z][\w+-]*(?: [A-Z][\w+-]*)*", part)
        if method:
            names.add(method.group())
    return names


def test_a_file_citing_lines_names_their_source():
    names = _source_names()
    unnamed = []
    for path in scanned_files():
        text = path.read_text(errors="replace")
        if _LINE.search(text) and not any(
            re.search(rf"(?<![\w/-]){re.escape(name)}(?![\w-])", text) for name in names
        ):
            unnamed.append(str(path.relative_to(ROOT)))
    assert not unnamed, (
        "these cite lines (l.N) but name no repository or method of SOURCES.md's table: "
        + ", ".join(unnamed)
    )
