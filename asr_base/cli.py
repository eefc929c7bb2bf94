"""A tiny subcommand registry shared by the ``asr-kd`` and ``data-prep`` entry points.

Each stage lives in its own module that defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def main(args: argparse.Namespace) -> int | None: ...

Modules are imported lazily, only for the subcommand that runs, so ``--help`` stays fast and one
stage's heavy imports never slow down another.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from typing import Sequence



def setup_logging(level: int = logging.INFO) -> None:
    """Kaldi/icefall-style log lines: ``2026-11-23 12:00:00,123 INFO [module] message``."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        force=True,
    )


class _ConfArgumentParser(argparse.ArgumentParser):
    """Reads ``@conf/file.conf`` arguments: Kaldi-style option files, ``--opt value`` per line, ``#`` comments."""

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        return arg_line.split("#", 1)[0].split()


def build_parser(prog: str, description: str, commands: Sequence[tuple[str, str, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     epilog="Options of a subcommand may also come from files: @conf/x.conf")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ConfArgumentParser)
    sub.required = True
    for name, module, help_text in commands:
        if importlib.util.find_spec(module) is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text, fromfile_prefix_chars="@",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def run(prog: str, description: str, commands: Sequence[tuple[str, str, str]], argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only import the module of the requested subcommand (plus argparse metadata for --help).
    wanted = next((a for a in argv if not a.startswith("-")), None)
    selected = [c for c in commands if c[0] == wanted] or list(commands)
    parser = build_parser(prog, description, selected)
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    rc = importlib.import_module(args._module).main(args)
    return int(rc or 0)
