"""The repository cites only what it contains: every path a source file names exists in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A path into the repository's folders (or out of it, to notes a clone does not hold), or one of the project's
#: steering documents, which live outside the repository.
PATH = re.compile(r"(?<![\w/.{-])((?:\.\./)?(?:sparse_convert|tests|examples|benchmarks|docs|notes|shared)/[\w./-]*"
                  r"|(?:paper|DESIGN|STYLE)\.md)\b")


def _named_paths(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in PATH.finditer(text)}


def test_every_path_named_in_the_code_exists():
    missing = []
    for source in sorted(ROOT.glob("**/*.py")):
        if ".venv" in source.parts or "build" in source.parts or source.name == Path(__file__).name:
            continue
        for name in _named_paths(source.read_text()):
            if not (ROOT / name).exists():
                missing.append(f"{source.relative_to(ROOT)}: {name}")
    assert not missing, "paths that are not in the repository:\n" + "\n".join(missing)


def test_the_check_sees_the_kinds_of_pointer_it_is_for():
    assert _named_paths("see ``notes/cht.md`` and paper.md; docs/topology.md §2, ../shared/references/x.md") == {
        "notes/cht.md", "paper.md", "docs/topology.md", "../shared/references/x.md"}
    assert _named_paths("runs/x/result.json, {tmp}/docs/a.txt, http://example.com/docs/x, report.md") == set()
