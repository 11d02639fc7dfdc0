"""The journal of finished jobs: one JSON line each, keyed by what decides the job's outcome
(see ``archsearch.fidelity``), so a measurement resumes and other recipes reuse its runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archsearch.errors import InputError
from archsearch.evaluate.recipe import PROXY_REVISIONS, Recipe
from archsearch.fidelity.jobs import FidelityResult, Job


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _none_to_nan(value: Any) -> Any:
    """Back from JSON: the undefined numbers ``finite_or_none`` wrote as null."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _none_to_nan(v) for k, v in value.items()}
    return value


# Recipe keys that never change a job's outcome: a recipe's names, a blend (which rescores),
# and a supernet (which scores without training; absent from journals written before it).
NOT_IN_JOBS = ("name", "description", "blend", "supernet")


def job_key(kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]) -> str:
    """What decides a job's outcome, hashed: a journal line is reused only for the same job,
    and for it whatever the recipe is called (``lm_brief_synflow`` reuses ``lm_brief``'s)."""
    settings = recipe.to_dict()
    for key in NOT_IN_JOBS:
        del settings[key]
    return _hashed(kind, arch, settings, proxies)


def legacy_job_key(kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]) -> str:
    """The key journals were written with before ``job_key`` left the recipe's names out (and
    before blends): read, so that their jobs are reused, never written."""
    settings = recipe.training.to_dict()
    del settings["blend"]
    settings.pop("supernet", None)
    return _hashed(kind, arch, settings, proxies)


def _revised(proxy: str) -> str:
    """``synflow@2`` for a proxy past its first definition, the bare name before that."""
    revision = PROXY_REVISIONS.get(proxy, 1)
    return proxy if revision == 1 else f"{proxy}@{revision}"


def _hashed(kind: str, arch: dict[str, Any], settings: dict[str, Any], proxies: Sequence[str]):
    what = {"kind": kind, "arch": arch, "recipe": settings}
    if kind == "proxies":  # a revised proxy is another job (revision 1 keeps its old key)
        what["proxies"] = [_revised(name) for name in proxies]
    text = json.dumps(what, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Journal:
    """Finished fidelity jobs, one JSON line each, appended as they finish (see module doc)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]]:
        """key -> outcome of every complete line; a line cut short by a crash is skipped."""
        if not self.path.exists():
            return {}
        found: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the journal {self.path}: {exc}", key="--save") from None
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                found[entry["key"]] = _none_to_nan(dict(entry["outcome"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def append(self, key: str, outcome: dict[str, Any]) -> None:
        line = json.dumps({"key": key, "outcome": finite_or_none(outcome)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            if handle.tell() and not _ends_with_newline(self.path):
                line = "\n" + line  # after a line cut short by a crash: start a new line
            handle.write((line + "\n").encode("utf-8"))
            handle.flush()


def rekey_old_lines(
    saved: Journal,
    finished: dict[str, dict[str, Any]],
    key_of: dict[Job, str],
    results: list[FidelityResult],
    proxies: Sequence[str],
) -> None:
    """Jobs a journal holds under the key from before it left the recipe's names out: read,
    and appended under the new key, so that a renamed recipe finds them too."""
    for job, key in key_of.items():
        legacy = legacy_job_key(job.kind, results[job.index].arch, job.recipe, proxies)
        if key not in finished and legacy in finished:
            finished[key] = finished[legacy]
            saved.append(key, finished[legacy])
