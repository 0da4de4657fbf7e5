"""``completion bash|zsh``: a shell completion script, written from the command-line parser itself,
so a new command or option completes without anyone editing a script.

Load it with ``source <(s3-sync completion bash)`` (bash) or ``source <(s3-sync completion zsh)``
(zsh, after ``compinit``). It completes the commands, each command's options, choices such as
``bash``/``zsh``, and file names where a command takes a file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

SHELLS = ("bash", "zsh")
COMMAND_NAME = "s3-sync"


class FileArgument(argparse._StoreAction):
    """An argument whose value is a file name: ``add_argument(..., action=FileArgument)``
    makes the shells complete it as one."""


@dataclass(frozen=True)
class Option:
    """One option or positional argument of a command, as a completion needs it."""

    flags: tuple[str, ...]  # empty for a positional
    help: str
    takes_value: bool
    value_name: str = "value"
    choices: tuple[str, ...] = ()
    is_file: bool = False


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, its one-line help, and its arguments."""

    name: str
    help: str
    options: tuple[Option, ...]


def commands_of(parser: argparse.ArgumentParser) -> list[Command]:
    """The subcommands of ``parser``, in the order ``--help`` lists them."""
    found: list[Command] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: (choice.help or "").replace("%%", "%") for choice in action._choices_actions}
        for name, sub in action.choices.items():
            found.append(Command(name, helps.get(name, ""), tuple(_options(sub))))
    return found


def global_options(parser: argparse.ArgumentParser) -> list[Option]:
    """The options accepted before the command (``--help``, ``--version``)."""
    return [o for o in _options(parser) if o.flags]


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0
        choices = tuple(str(c) for c in action.choices) if action.choices else ()
        help_text = (action.help or "").replace("%%", "%")
        value_name = str(action.metavar or action.dest).lower().replace("_", "-")
        options.append(Option(tuple(action.option_strings), help_text, takes_value, value_name, choices,
                              isinstance(action, FileArgument)))
    return options


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``shell`` for ``parser``'s commands."""
    if shell == "bash":
        return bash_script(parser)
    if shell == "zsh":
        return zsh_script(parser)
    raise ValueError(f"no completion for {shell!r}: one of {', '.join(SHELLS)}")


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion function, registered for ``s3-sync``."""
    commands = commands_of(parser)
    top = [flag for option in global_options(parser) for flag in option.flags]
    cases = []
    for command in commands:
        flags = [flag for option in command.options for flag in option.flags]
        choices = [c for option in command.options if not option.flags for c in option.choices]
        cases.append(f"        {command.name}) flags={_bash_words(flags)}; choices={_bash_words(choices)} ;;")
    return "\n".join([
        f"# bash completion for {COMMAND_NAME}: source <({COMMAND_NAME} completion bash)",
        "_s3_sync() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" flags="" choices=""',
        '    if [ "$COMP_CWORD" -eq 1 ]; then',
        f'        COMPREPLY=($(compgen -W {_bash_words([c.name for c in commands] + top)} -- "$cur"))',
        "        return",
        "    fi",
        '    case "${COMP_WORDS[1]}" in',
        *cases,
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$flags" -- "$cur"))',
        '    elif [ -n "$choices" ]; then',
        '        COMPREPLY=($(compgen -W "$choices" -- "$cur"))',
        "    else",
        "        COMPREPLY=()  # -o default: file names",
        "    fi",
        "}",
        f"complete -o default -F _s3_sync {COMMAND_NAME}",
        "",
    ])


def _bash_words(words: list[str]) -> str:
    return "'" + " ".join(words) + "'"


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """A zsh completion function (``#compdef s3-sync``) with each command's and option's help."""
    commands = commands_of(parser)
    described = [f"        {_zsh_quote(_zsh_escape(c.name, ':') + ':' + _zsh_escape(c.help, ':'))}"
                 for c in commands]
    top = [_zsh_spec(option, exclusive=True) for option in global_options(parser)]
    cases = []
    for command in commands:
        specs = " ".join(_zsh_spec(option) for option in command.options)
        cases.append(f"            {command.name}) _arguments {specs} ;;")
    return "\n".join([
        f"#compdef {COMMAND_NAME}",
        f"# zsh completion for {COMMAND_NAME}: source <({COMMAND_NAME} completion zsh) after compinit",
        "_s3_sync() {",
        "    local curcontext=\"$curcontext\" state line",
        "    local -a commands",
        "    commands=(",
        *described,
        "    )",
        f"    _arguments -C {' '.join(top)} '1:command:->command' '*::argument:->argument'",
        "    case $state in",
        "        command) _describe -t commands 'command' commands ;;",
        "        argument)",
        "            case $words[1] in",
        *cases,
        "            esac ;;",
        "    esac",
        "}",
        # Autoloaded from $fpath (the #compdef line) it completes; sourced, it registers itself.
        'if [ "$funcstack[1]" = "_s3_sync" ]; then',
        '    _s3_sync "$@"',
        "else",
        f"    compdef _s3_sync {COMMAND_NAME}",
        "fi",
        "",
    ])


def _zsh_spec(option: Option, *, exclusive: bool = False) -> str:
    """One ``_arguments`` spec: ``--flag[help]``, ``--flag[help]:value:_files``, ``:name:(a b)``."""
    action = _zsh_action(option)
    help_text = _zsh_escape(option.help, "[]:")
    name = _zsh_escape(option.value_name, ":")
    if not option.flags:
        return _zsh_quote(f":{name}:{action}")
    value = f":{name}:{action}" if option.takes_value else ""
    if len(option.flags) == 1:
        return _zsh_quote(f"{'(- *)' if exclusive else ''}{option.flags[0]}[{help_text}]{value}")
    # -h and --help: either excludes the other (or, before a command, everything else).
    guard = "(- *)" if exclusive else "(" + " ".join(option.flags) + ")"
    return _zsh_quote(guard) + "{" + ",".join(option.flags) + "}" + _zsh_quote(f"[{help_text}]{value}")


def _zsh_action(option: Option) -> str:
    """What zsh offers for the value: the choices, file names, or nothing (``" "``)."""
    if option.choices:
        return "(" + " ".join(option.choices) + ")"
    return "_files" if option.is_file else " "


def _zsh_escape(text: str, special: str) -> str:
    return "".join("\\" + c if c in special or c == "\\" else c for c in " ".join(text.split()))


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
