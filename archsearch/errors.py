"""Error types the CLI turns into one line: bad user input (exit 2), and a run that something
outside the input stopped (exit 1)."""

from __future__ import annotations

from typing import Any

import yaml

# The longest key or message the one-line answer shows; user-supplied junk (a 10 kB string
# value, a key with line breaks) is cut and escaped rather than flooding the terminal.
MAX_PART = 600


class InputError(Exception):
    """Bad input from a user file or flag: where it is, which key, what is wrong.

    The CLI turns this into a single line ``file: key: message`` and exit status 2.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key
        self.source = source

    def located(self, source: str) -> InputError:
        """Return this error with its file filled in (keeps an inner, more precise source)."""
        if self.source is None:
            self.source = source
        return self

    def under(self, prefix: str) -> InputError:
        """Prefix the key, so nested validation reports ``params.heads`` rather than ``heads``."""
        self.key = prefix if self.key is None else f"{prefix}.{self.key}"
        return self

    def __str__(self) -> str:
        parts = [self.source] if self.source else []
        if self.key is not None:
            parts.append(_key_text(self.key))
        parts.append(self.message)
        return ": ".join(one_line(part) for part in parts)


class RunAborted(Exception):
    """A run stopped by something outside its input, such as a worker process killed for
    memory. The CLI prints the message as one line and exits 1; the message says what was kept
    and how to go on."""


def one_line(text: Any, limit: int = MAX_PART) -> str:
    """``text`` as one printable line: control characters escaped, cut to ``limit``. Keys come
    from user files and may be numbers or hold line breaks, so anything is accepted."""
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def yaml_key(key: Any) -> str:
    """A mapping key from a user's file as text, spelled as YAML spells it: a file may have
    ``null:``, ``true:`` or ``0:`` where a name belongs."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    return str(key)


def _key_text(key: Any) -> str:
    """A key as the user can find it in the file: quoted when empty, padded or not text."""
    if isinstance(key, str) and key and key == key.strip():
        return key
    return repr(key)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What a YAML parser objected to and where, in one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem
