"""Mutated copies of the shipped YAML files, for fuzzing the loaders (tests/test_loader_fuzz.py).

A mutation starts from a real document (a built-in space, profile or recipe, or an architecture
sampled from a built-in space), so most generated files are almost valid and reach the deep
checks, not only the first type test. Every choice goes through one ``random.Random``, so the
same generator serves hypothesis (``st.randoms``, shrinkable) and a plain seeded loop that counts
outcomes over many thousands of files.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from archsearch.builtins import builtin_dir, list_builtins

# Values that are wrong somewhere and right elsewhere; sizes a user can mistype.
HUGE = [10**6, 10**9, 2**31, 2**63, 10**30, 10**400, -(10**12), 1e308, 1e-308]
TEXT = ["", " ", "1e-4", "12", "true", "null", "x" * 300, "line\nbreak", "ünï", "{a: 1}", "*"]
KEYS = ["bogus", "", "Name", "params ", "line\nkey", 0, 1.5, None, True, "fixed.d_model"]


def builtin_documents(kind: str) -> dict[str, Any]:
    """Every shipped file of one kind, parsed: name -> document."""
    folder = builtin_dir(kind)
    return {
        name: yaml.safe_load((folder / f"{name}.yaml").read_text()) for name in list_builtins(kind)
    }


def architecture_documents() -> dict[str, Any]:
    """Architecture files as exports write them: one sampled configuration of each built-in
    space (flat form), and one wrapped under ``arch:`` beside provenance."""
    from archsearch.space import load_space

    out: dict[str, Any] = {}
    for name in list_builtins("search_spaces"):
        space = load_space(name)
        rng = random.Random(0)
        for _ in range(50):
            values = space.sample(rng)
            if not space.violations(values):
                break
        flat = space.to_config(values).to_dict()
        out[name] = flat
        out[f"{name}.export"] = {"arch": copy.deepcopy(flat), "provenance": {"space": name}}
    return out


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A value of some other type, size or shape than the one expected."""
    pick = rng.randrange(9 if depth < 2 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, 1, -1, 3, 7, 64, 2.5, -0.5, 0.0, float("nan"), float("inf")])
    if pick == 3:
        return rng.choice(HUGE)
    if pick == 4:
        return rng.choice(TEXT)
    if pick == 5:
        return rng.choice(["full", "dense", "causal_lm", "seq2seq", "adamw", "macs", "bytes"])
    if pick == 6:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 7:
        return {rng.choice(KEYS): junk(rng, depth + 1) for _ in range(rng.randrange(3))}
    return rng.choice([[], {}, [[1, 2]], {"choice": []}, {"int": [1, "x"]}, [None]])


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every node (the root is the empty path)."""
    out = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_nodes(value, (*path, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.extend(_nodes(value, (*path, index)))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def mutate(doc: Any, rng: random.Random) -> Any:
    """One to three edits: replace a value, delete a key or item, add an unknown key, wrap a
    value in a list or mapping, or put a huge number where a count or size goes."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _nodes(doc)
        path = rng.choice(paths)
        op = rng.randrange(6)
        if not path:
            if op == 0:
                return junk(rng)
            if isinstance(doc, dict):
                doc[rng.choice(KEYS)] = junk(rng)
            continue
        parent, last = _parent(doc, path), path[-1]
        if op in (0, 1):
            parent[last] = junk(rng)
        elif op == 2:
            del parent[last]
        elif op == 3 and isinstance(parent[last], dict):
            parent[last][rng.choice(KEYS)] = junk(rng)
        elif op == 4:
            parent[last] = rng.choice([[parent[last]], {"value": parent[last]}])
        else:
            parent[last] = rng.choice(HUGE)
    return doc


def mutate_text(text: str, rng: random.Random) -> str:
    """Edits below the YAML level: a cut, a stray character, a tab, an alias bomb, deep nesting."""
    op = rng.randrange(6)
    at = rng.randrange(len(text) + 1)
    if op == 0:
        return text[:at]
    if op == 1:
        return (
            text[:at]
            + rng.choice(["\t", ":", "- ", "{", "]", "&a ", "*a", "!!python/none", "\x00"])
            + text[at:]
        )
    if op == 2:
        return (
            text
            + "\n"
            + _alias_bomb(rng.choice(["fixed", "params", "budgets", "optimizer", "arch", "extra"]))
        )
    if op == 3:
        depth = rng.choice([50, 500, 5000])
        return text + f"\nnested: {'[' * depth}{']' * depth}\n"
    if op == 4:
        return text.replace("\n", "\n" + " " * rng.randrange(1, 4), 1)
    return text + "\n" + text  # every key twice


def _alias_bomb(key: str) -> str:
    """A billion laughs: nine levels of aliases, each ten times the one before (10^9 leaves)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines).replace("a0:", f"{key}_0:") + f"\n{key}: *a9\n"


def write(folder: Path, name: str, doc: Any, rng: random.Random, *, raw: bool) -> Path:
    """``doc`` as a YAML file, its text mutated too when ``raw``."""
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if raw:
        text = mutate_text(text, rng)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


Loader = Callable[[Path], Any]
