"""constraints.txt pins every dependency the package declares, inside the declared ranges.

`make run` and `make test` install from it, so a release of a dependency cannot break a fresh
clone; `make upgrade` rewrites it on purpose. A pin missing, loose or outside pyproject.toml's
range would let an install drift again or fail to resolve.
"""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        name = canonicalize_name(match.group(1))
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = Version(match.group(2))
        # A local label (+cpu) would refuse the CUDA or plain build of the same release.
        assert found[name].local is None, f"constraints.txt: {line!r} carries a local label"
    return found


def test_every_declared_dependency_is_pinned_within_its_range():
    pinned = pins()
    declared = [Requirement(text) for text in requires("archsearch") or []]
    assert declared, "archsearch's metadata lists no dependencies: is it installed?"
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if name == "archsearch":  # the dev extra naming the other extras
            continue
        assert name in pinned, f"{requirement.name} is declared but not pinned in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject's {requirement}"
        )
