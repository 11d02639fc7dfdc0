"""Error types the CLI turns into one line: bad user input (exit 2), and a run that something
outside the input stopped (exit 1)."""

from __future__ import annotations

import yaml


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
        parts = [p for p in (self.source, self.key) if p]
        parts.append(self.message)
        return ": ".join(parts)


class RunAborted(Exception):
    """A run stopped by something outside its input, such as a worker process killed for
    memory. The CLI prints the message as one line and exits 1; the message says what was kept
    and how to go on."""


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What a YAML parser objected to and where, in one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem
