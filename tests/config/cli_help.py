"""A check the CLI tests share: every flag's help shows its default."""

from __future__ import annotations

import argparse

from config.cli import HelpFormatter


def help_without_default(parser: argparse.ArgumentParser) -> list[str]:
    """The flags of ``parser`` whose help, as printed, says nothing of a default."""
    formatter = HelpFormatter(parser.prog)
    missing = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.option_strings:
            continue
        shown = formatter._get_help_string(action) or ""
        if "default" not in shown:
            missing.append(action.option_strings[-1])
    return missing
