"""Reading a user's YAML file, with the bounds every loader needs checked once, here.

The space, profile, recipe and architecture loaders answer any file with a loaded object or one
``InputError`` line, quickly. What would otherwise take seconds or end in a traceback is refused
before PyYAML builds anything: a file far larger than any real one (PyYAML parses about 100 kB
a second here), nesting deep enough to exhaust Python's recursion limit, and aliases that expand
a small file into millions of values (the "billion laughs") or into a value that contains
itself. These limits are far above what a real space, profile, recipe or architecture needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archsearch.errors import InputError, yaml_problem

MAX_BYTES = 64 * 1024  # the shipped files are 0.5-3 kB
MAX_DEPTH = 32  # mappings and lists inside one another; the shipped files nest 4 deep
MAX_VALUES = 100_000  # scalars, lists and mappings, counting each alias's copy in full


def read_yaml(path: Path) -> Any:
    """The parsed document of ``path``; any problem is an ``InputError`` naming the file."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(
                f"is {size:,} bytes, over the {MAX_BYTES:,}-byte limit for a YAML input "
                "(archsearch's spaces, profiles, recipes and architectures are a few kB)",
                source=source,
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=source) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=source) from None
    try:
        _check_shape(text)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {yaml_problem(exc)}", source=source) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        problem = str(exc).split(";")[0]
        raise InputError(f"not valid YAML: {problem}", source=source) from None
    except InputError as exc:
        raise exc.located(source) from None


def _check_shape(text: str) -> None:
    """Walk PyYAML's event stream (flat, no recursion, nothing built) and refuse documents
    nested deeper than MAX_DEPTH or expanding past MAX_VALUES values through aliases."""
    sizes: dict[str, int] = {}  # anchor -> values in the anchored node, aliases expanded
    stack: list[list[Any]] = [[0, None]]  # open collections: [values so far, anchor]
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([1, event.anchor])
            if len(stack) - 1 > MAX_DEPTH:
                raise InputError(f"nests lists and mappings more than {MAX_DEPTH} deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            count, anchor = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if any(open_anchor == event.anchor for _, open_anchor in stack):
                raise InputError(f"alias *{event.anchor} refers to a value that contains it")
            count, anchor = sizes.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        stack[-1][0] += count
        if sum(level[0] for level in stack) > MAX_VALUES:
            raise InputError(
                f"expands to more than {MAX_VALUES:,} values (aliases repeating aliases?)"
            )
