"""The README stands alone and stays true (issue 13, items 4 and 6).

Checked on README.md and docs/*.md, as text (no Markdown library needed):
- every table is one table: each run of `|` lines starts with a header row and
  a `| --- |` separator, and every row has the header's number of cells (a
  blank line inside a table cuts it, and the rows after it render as text);
- every relative link, and every repository path quoted as code, names a file
  or directory in the repository (nothing outside it, such as ../shared/);
  every #anchor names a heading;
- every `make TARGET` quoted as code names a target of the Makefile.
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))


def prose_and_code(path):
    """(lines outside fenced code blocks with their numbers, fenced blocks' text)."""
    prose, fenced, in_fence = [], [], False
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        (fenced if in_fence else prose).append((n, line))
    return prose, fenced


def cells(row):
    # A cell may hold `a|b` in code; the README escapes none, so split plainly
    # outside code spans.
    outside = re.sub(r"`[^`]*`", lambda m: "x" * len(m.group(0)), row)
    bounds = [i for i, c in enumerate(outside) if c == "|"]
    return [row[a + 1:b].strip() for a, b in zip(bounds, bounds[1:])]


def test_tables_are_whole():
    problems = []
    for path in DOCS:
        prose, _ = prose_and_code(path)
        runs, current, last = [], [], None
        for n, line in prose:
            if line.startswith("|"):
                if current and last != n - 1:
                    runs.append(current)
                    current = []
                current.append((n, line))
                last = n
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        for run in runs:
            where = f"{path.name}:{run[0][0]}"
            if len(run) < 3:
                problems.append(f"{where}: a table of {len(run)} line(s): cut from its header?")
                continue
            header, sep = cells(run[0][1]), cells(run[1][1])
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in sep) or len(sep) != len(header):
                problems.append(f"{where}: no `| --- |` separator under the header "
                                f"(rows cut from their table by a blank line?): {run[0][1][:60]}")
                continue
            for n, line in run[2:]:
                if len(cells(line)) != len(header):
                    problems.append(f"{path.name}:{n}: {len(cells(line))} cells, header has {len(header)}")
    assert problems == [], "\n".join(problems)


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    prose, _ = prose_and_code(path)
    return {slug(m.group(1)) for _, line in prose if (m := re.match(r"#+\s+(.*)", line))}


def test_links_and_paths_exist():
    top = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}
    problems = []
    for path in DOCS:
        prose, _ = prose_and_code(path)
        for n, line in prose:
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):
                    continue            # http:, https:, mailto:
                file_part, _, anchor = target.partition("#")
                dest = (path.parent / file_part).resolve() if file_part else path
                if REPO not in dest.parents and dest != REPO:
                    problems.append(f"{path.name}:{n}: link outside the repository: {target}")
                elif not dest.exists():
                    problems.append(f"{path.name}:{n}: link to a missing file: {target}")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{path.name}:{n}: no heading for #{anchor} in {dest.name}")
            for code in re.findall(r"`([^`\s]+)`", line):
                m = re.fullmatch(r"(?:\./)?((?:\.\.|[\w.-]+)(?:/[\w.-]*)+)", code)
                if not m:
                    continue
                rel = m.group(1)
                first = rel.split("/")[0]
                if first == "..":
                    problems.append(f"{path.name}:{n}: `{code}` is outside the repository")
                elif first in top and not (REPO / rel).exists():
                    problems.append(f"{path.name}:{n}: `{code}` does not exist")
    assert problems == [], "\n".join(problems)


def makefile_targets():
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        m = re.match(r"^([^\s#=:][^=:]*?)\s*::?(?!=)", line)
        if m:
            targets.update(m.group(1).split())
    return targets


def make_commands(path):
    """The `make ...` command lines quoted as code: inline spans and fenced
    blocks. Yields (line number, list of targets)."""
    prose, fenced = prose_and_code(path)
    pieces = [(n, span) for n, line in prose for span in re.findall(r"`([^`]+)`", line)]
    pieces += fenced
    for n, text in pieces:
        for cmd in re.split(r"&&|;|\|", text):
            cmd = cmd.split("#")[0].split()
            if cmd[:1] != ["make"]:
                continue
            yield n, [w for w in cmd[1:] if "=" not in w and not w.startswith("-")]


def test_make_targets_exist():
    targets = makefile_targets()
    assert {"demo", "test", "unit", "integration"} <= targets    # the parser works
    named, problems = 0, []
    for path in DOCS:
        for n, words in make_commands(path):
            named += 1
            problems += [f"{path.name}:{n}: `make {w}`: no such target" for w in words
                         if w not in targets]
    assert named >= 10, "the README's make commands were not found"
    assert problems == [], "\n".join(problems)


def test_readme_facts():
    text = (REPO / "README.md").read_text()
    # The Redis command count test_scale.py asserts.
    scale = (REPO / "tests" / "integration" / "test_scale.py").read_text()
    count = int(re.search(r"assert small\[3\] == (\d+)", scale).group(1))
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"sends Redis {words[count]} commands" in text.replace("\n", " ")
    # How long `make test` takes is said.
    assert re.search(r"make test.*\n(.*\n)*?.*about \d+ minutes", text)
