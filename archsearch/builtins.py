"""Where the built-in spaces, evaluator recipes and hardware profiles live.

The YAML folders sit at the repository root so users can read and copy them; the wheel ships
them inside the package under ``archsearch/_builtin``. Both locations are searched, so an
editable checkout and an installed wheel see the same built-ins.
"""

from __future__ import annotations

from pathlib import Path

from archsearch.errors import InputError

KINDS = ("search_spaces", "evaluators", "hardware_profiles")
_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """The folder holding the built-in YAML files of one kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of built-in: {kind}")
    for candidate in (_PACKAGE_DIR / "_builtin" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no built-in {kind} folder next to {_PACKAGE_DIR}")


def list_builtins(kind: str) -> list[str]:
    """Names (file stems) of the built-ins of one kind, sorted."""
    return sorted(p.stem for p in builtin_dir(kind).glob("*.yaml"))


def resolve(kind: str, name_or_path: str | Path, *, option: str) -> Path:
    """A built-in's name or a path to a user's file -> the YAML file to read.

    ``option`` names the flag in the error, e.g. ``--profile``.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in text or path.is_file():
        if not path.is_file():
            raise InputError("no such file", key=option, source=text)
        return path
    candidate = builtin_dir(kind) / f"{text}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(list_builtins(kind)) or "none"
    raise InputError(f"no built-in named '{text}' (built-ins: {known})", key=option)
