"""Two views of the project's dependencies for `.ci/run --latest` and `--lowest`.

    uv pip freeze | python .ci/deps.py drift requirements/ci.lock   # what differs from the lock
    python .ci/deps.py floors > overrides.txt                       # name==bound, the library's own >=
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
FLOOR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*>=\s*([^\s,;]+)")
PROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, set[str]]:
    """Each package's pinned versions (a universal lock may pin one per Python range)."""
    found: dict[str, set[str]] = {}
    for line in lines:
        if match := PINNED.match(line.strip()):
            found.setdefault(normalized(match[1]), set()).add(match[2])
    return found


def drift(lock: str) -> None:
    locked = pins(Path(lock).read_text(encoding="utf-8").splitlines())
    installed = pins(sys.stdin.read().splitlines())
    rows = [
        f"  {name:<28} {' / '.join(sorted(locked.get(name, {'(not in the lock)'}))):>20} -> {version}"
        for name, versions in sorted(installed.items())
        for version in sorted(versions)
        if version not in locked.get(name, set())
    ]
    sys.stdout.write("\n".join([f"{len(rows)} of {len(installed)} installed packages differ from the lock", *rows]) + "\n")


def floors() -> None:
    """`name==bound` for every `name>=bound` the library itself depends on. As uv overrides they
    hold even where a test dependency pins higher (ccxt pins attrs); the extras' own bounds are
    left to uv's lowest-direct resolution, since an override would also cut their ties to others
    (pandas to numpy)."""
    project = tomllib.loads(PROJECT.read_text(encoding="utf-8"))["project"]
    bounds = {normalized(m[1]): m[3] for r in project["dependencies"] if (m := FLOOR.match(r))}
    sys.stdout.write("".join(f"{name}=={bound}\n" for name, bound in sorted(bounds.items())))


if __name__ == "__main__":
    if sys.argv[1:2] == ["drift"] and len(sys.argv) == 3:
        drift(sys.argv[2])
    elif sys.argv[1:] == ["floors"]:
        floors()
    else:
        sys.exit(__doc__)
