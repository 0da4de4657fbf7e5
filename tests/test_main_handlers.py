"""Every command the parser knows has a handler that imports and can be called."""

from __future__ import annotations

import argparse

from sync_service.main import HANDLERS, WITHOUT_CONFIGURATION, build_parser, handler_of


def test_every_command_resolves_to_a_callable_handler() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(subcommands.choices) - WITHOUT_CONFIGURATION
    assert commands == set(HANDLERS)
    for command in commands:
        assert callable(handler_of(command)), command
