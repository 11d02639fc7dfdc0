"""Byte-level text corpora that exist offline on every machine with Python.

``python_stdlib`` is the standard library's own ``.py`` sources: no download, no licence to
check, and a few megabytes of real, varied text. Files are split into train and validation BY
FILE (a stable hash of the relative path decides), so no file is in both. The fingerprint
covers the Python version and every byte used, so results measured on a different Python (whose
standard library differs) are never mixed silently with these.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from archsearch.checks import check_count
from archsearch.errors import InputError

CORPORA = ("python_stdlib",)
# Folders left out: installed packages are not the standard library; the test suites, IDLE
# and lib2to3 (with its deliberately broken grammar fixtures) are large and atypical.
EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
)
VALID_PER_MILLE = 50  # ~5% of files go to validation
_FORMAT = "archsearch-corpus-v1"  # bump when the layout below changes, so fingerprints change

_CACHE: dict[tuple[str, int | None], Corpus] = {}
_PARAGRAPH_END = re.compile(rb"\n(?:[ \t\r\f\v]*\n)+")  # a newline, then blank lines


@dataclass(frozen=True, eq=False)
class Corpus:
    """Train and validation bytes plus what identifies them.

    ``train`` / ``valid`` are 1-D ``torch.uint8`` tensors shared through a cache: read them,
    never write into them. ``train_sizes`` / ``valid_sizes`` are the byte lengths of the
    documents (files, paragraphs or rows) that each split concatenates, in order, so dedup can
    work per document; empty means the split is one document.
    """

    train: torch.Tensor
    valid: torch.Tensor
    fingerprint: str
    description: str
    train_files: tuple[str, ...]
    valid_files: tuple[str, ...]
    train_sizes: tuple[int, ...] = ()
    valid_sizes: tuple[int, ...] = ()

    def documents(self, split: str) -> list[bytes]:
        """The documents of ``split`` ("train" or "valid") as bytes, in corpus order."""
        data = (self.train if split == "train" else self.valid).numpy().tobytes()
        return split_sizes(data, self.train_sizes if split == "train" else self.valid_sizes)


def paragraph_sizes(text: bytes) -> tuple[int, ...]:
    """Sizes of the paragraphs of ``text``: a paragraph ends after a run of blank lines.

    The blank lines stay with the paragraph before them, so the sizes add up to ``len(text)``
    and dropping a paragraph leaves the others still separated by blank lines.
    """
    sizes, start = [], 0
    for match in _PARAGRAPH_END.finditer(text):
        sizes.append(match.end() - start)
        start = match.end()
    if start < len(text):
        sizes.append(len(text) - start)
    return tuple(sizes)


def split_sizes(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    """``data`` cut into consecutive pieces of ``sizes`` bytes (no sizes: one piece)."""
    if not sizes:
        return [data]
    if sum(sizes) != len(data):
        raise ValueError(f"document sizes add up to {sum(sizes)}, not {len(data)} bytes")
    out, start = [], 0
    for size in sizes:
        out.append(data[start : start + size])
        start += size
    return out


def load_corpus(name: str = "python_stdlib", max_bytes: int | None = None) -> Corpus:
    """Load a corpus by name, at most ``max_bytes`` per split (None: everything).

    Cached per process, so every trial of a worker reads the files once.
    """
    if name not in CORPORA:
        raise InputError(f"unknown corpus '{name}' (known: {', '.join(CORPORA)})", key="data")
    if max_bytes is not None:
        check_count("max_bytes", max_bytes)
    key = (name, max_bytes)
    if key not in _CACHE:
        _CACHE[key] = load_tree(stdlib_root(), max_bytes=max_bytes, python_version=python_version())
    return _CACHE[key]


def stdlib_root() -> Path:
    """The folder holding this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_version() -> str:
    """Implementation and version, e.g. ``CPython 3.11.7``: what decides the stdlib's text."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def is_validation(relative_path: str) -> bool:
    """Stable split by file: the same path lands in the same split on every machine."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 1000 < VALID_PER_MILLE


def list_sources(root: Path) -> list[str]:
    """Relative POSIX paths of the ``.py`` files under ``root``, sorted, excluded folders pruned."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in EXCLUDED_DIRS]
        for file in files:
            if file.endswith(".py"):
                found.append(Path(folder, file).relative_to(root).as_posix())
    return sorted(found)


def load_tree(root: Path, *, max_bytes: int | None, python_version: str) -> Corpus:
    """Build a corpus from the ``.py`` files under ``root`` (the testable core of load_corpus)."""
    digest = hashlib.sha256(f"{_FORMAT}\0{python_version}\0".encode())
    splits: dict[str, list[bytes]] = {"train": [], "valid": []}
    names: dict[str, list[str]] = {"train": [], "valid": []}
    sizes = {"train": 0, "valid": 0}
    for relative in list_sources(root):
        split = "valid" if is_validation(relative) else "train"
        if max_bytes is not None and sizes[split] >= max_bytes:
            continue
        content = (root / relative).read_bytes()
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a byte-level model of Python text should see text
        if max_bytes is not None:
            content = content[: max_bytes - sizes[split]]
        digest.update(f"{split}\0{relative}\0{len(content)}\0".encode())
        digest.update(content)
        splits[split].append(content)
        names[split].append(relative)
        sizes[split] += len(content)
    if not names["train"] or not names["valid"]:
        raise InputError(f"too few .py files under {root} to split into train and validation")
    cap = "all bytes" if max_bytes is None else f"at most {max_bytes} bytes per split"
    description = (
        f"{python_version} standard library .py sources under {root} ({cap}): "
        f"{len(names['train'])} train files ({sizes['train']} bytes), "
        f"{len(names['valid'])} validation files ({sizes['valid']} bytes)"
    )
    return Corpus(
        train=_as_tensor(splits["train"]),
        valid=_as_tensor(splits["valid"]),
        fingerprint=digest.hexdigest(),
        description=description,
        train_files=tuple(names["train"]),
        valid_files=tuple(names["valid"]),
        train_sizes=tuple(map(len, splits["train"])),
        valid_sizes=tuple(map(len, splits["valid"])),
    )


def _as_tensor(chunks: list[bytes]) -> torch.Tensor:
    return torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)
