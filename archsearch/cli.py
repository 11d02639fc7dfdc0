"""archsearch: search efficient Transformer architectures under a hardware budget.

Each subcommand is one module in ``archsearch/commands`` with ``add_parser`` and ``run``.
Bad input gets one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from archsearch.commands import COMMANDS
from archsearch.errors import InputError, RunAborted

USAGE_ERROR = 2
RUN_ABORTED = 1
BROKEN_PIPE = 141  # 128 + SIGPIPE, the status a shell reports for a tool its pipe's reader left


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archsearch", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"archsearch.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
        sys.stdout.flush()  # a reader that left shows up here, not in the exit-time flush
        return status
    except InputError as exc:
        print(f"archsearch: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except RunAborted as exc:
        print(f"archsearch: error: {exc}", file=sys.stderr)
        return RUN_ABORTED
    except KeyboardInterrupt:
        print("archsearch: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left early (`archsearch show --json | head`): stop quietly, as a Unix tool
        # killed by SIGPIPE would, and point stdout at /dev/null so the exit flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
