"""``archsearch spaces | profiles | evaluators``: list the built-in YAML files."""

from __future__ import annotations

import argparse

KINDS = {
    "spaces": ("search_spaces", "list built-in search spaces"),
    "profiles": ("hardware_profiles", "list built-in hardware profiles"),
    "evaluators": ("evaluators", "list built-in evaluator recipes"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    for command, (folder, help_text) in KINDS.items():
        parser = subparsers.add_parser(command, help=help_text)
        parser.set_defaults(handler=handle, folder=folder)


def handle(args: argparse.Namespace) -> int:
    from archsearch.builtins import builtin_dir, list_builtins

    for name in list_builtins(args.folder):
        print(f"{name:<24} {builtin_dir(args.folder) / (name + '.yaml')}")
    return 0
