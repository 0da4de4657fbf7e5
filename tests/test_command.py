"""The installed command: ``pip install .`` into a fresh virtual environment gives ``s3-sync``
with ``--version``, ``--help``, ``help`` and shell completion; the completion scripts run in a
real bash; the version's fallbacks as pure units."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.local_servers import REPO_ROOT
from sync_service.commands.completion import bash_script, commands_of, zsh_script
from sync_service.main import build_parser, program_name
from sync_service.version import UNKNOWN, package_version

#: What ``pip install .`` needs of the checkout (pyproject.toml names the rest).
PACKAGE_SOURCES = ("pyproject.toml", "requirements.txt", "sync_service")


def project_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the package (and its pinned dependencies) installed
    from a copy of the checkout: the build writes ``build/`` and ``*.egg-info`` beside the
    sources, which must not land in the working tree."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in PACKAGE_SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    venv = root / "venv"
    # No pip of its own in the new environment (ensurepip costs seconds): this pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                             "--quiet", str(source)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    print(f"pip install . took {time.monotonic() - started:.1f}s")
    return venv


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Another folder than the checkout, and the environment's own bin first: nothing of the
    # checkout can be imported instead of what was installed.
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)})


@pytest.mark.timeout(300)
def test_pip_install_gives_the_s3_sync_command(installed: Path, tmp_path: Path) -> None:
    # when the installed command is asked for its version and help
    version = run(installed, "s3-sync", "--version", cwd=tmp_path)
    usage = run(installed, "s3-sync", "--help", cwd=tmp_path)
    helped = run(installed, "s3-sync", "help", cwd=tmp_path)
    completion = run(installed, "s3-sync", "completion", "bash", cwd=tmp_path)
    module = run(installed, "python", "-m", "sync_service.main", "--version", cwd=tmp_path)
    template = run(installed, "python", "-c", "from sync_service.web.status_page import TEMPLATE; "
                   "print(TEMPLATE.is_file(), TEMPLATE)", cwd=tmp_path)

    # then: the version of the metadata, every command, a completion script, and the same entry
    assert version.returncode == 0 and version.stdout == f"s3-sync {project_version()}\n", version
    for answer in (usage, helped):
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.startswith("usage: s3-sync ")
        for command in ("initial-sync", "incremental-sync", "reconcile", "daemon", "status", "completion"):
            assert command in answer.stdout
    assert completion.returncode == 0 and "complete -o default -F _s3_sync s3-sync" in completion.stdout
    assert module.stdout == f"python -m sync_service.main {project_version()}\n", module
    assert template.stdout.startswith("True ") and str(installed) in template.stdout  # package data went in


def test_a_bad_configuration_does_not_stop_version_or_completion(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "SYNC_INTERVAL": "soon"}
    command = [sys.executable, "-m", "sync_service.main"]
    version = subprocess.run([*command, "--version"], cwd=tmp_path, env=env, capture_output=True, text=True)
    script = subprocess.run([*command, "completion", "zsh"], cwd=tmp_path, env=env, capture_output=True, text=True)
    status = subprocess.run([*command, "status"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout == f"python -m sync_service.main {project_version()}\n"
    assert script.returncode == 0 and script.stdout.startswith("#compdef s3-sync\n")
    assert status.returncode == 2 and "SYNC_INTERVAL" in status.stderr  # the configuration is read there


def bash_complete(*words: str) -> list[str]:
    """What bash offers after ``words`` (the last one being completed), with the script loaded."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    assert bash is not None
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"{bash_script(build_parser('s3-sync'))}\n"
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _s3_sync; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run([bash, "--norc", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completes_commands_options_and_choices() -> None:
    assert bash_complete("s3-sync", "in") == ["initial-sync", "incremental-sync"]
    assert "--version" in bash_complete("s3-sync", "--")
    assert bash_complete("s3-sync", "initial-sync", "--") == ["--help", "--dry-run", "--json", "--plan-only"]
    assert bash_complete("s3-sync", "completion", "") == ["bash", "zsh"]
    assert bash_complete("s3-sync", "diff", "") == []  # file names: bash's default (-o default)


def test_completion_scripts_follow_the_parser() -> None:
    # given the parser, with a command added to it
    parser = build_parser("s3-sync")
    names = [command.name for command in commands_of(parser)]

    # then both scripts offer every command, and each command's options in its own branch
    bash, zsh = bash_script(parser), zsh_script(parser)
    for name in names:
        assert f"        {name}) " in bash and f"            {name}) _arguments" in zsh
    assert "'reconcile:list the bucket" in zsh and "--max-delete[refuse a repair deleting more than N files " \
        "(default\\: 10% of the records)]:n: '" in zsh
    assert "':old:_files' ':new:_files'" in zsh and "':shell:(bash zsh)'" in zsh
    assert "'(- *)--version[print the version and exit]'" in zsh
    if shutil.which("zsh"):
        assert subprocess.run(["zsh", "-n"], input=zsh, text=True).returncode == 0


def test_the_version_comes_from_the_checkout_then_the_metadata(tmp_path: Path) -> None:
    checkout = tmp_path / "pyproject.toml"
    checkout.write_text('[project]\nname = "s3-sync-service"\nversion = "9.8.7"\n')
    other = tmp_path / "other.toml"
    other.write_text('[project]\nname = "something-else"\nversion = "1.0"\n')

    assert package_version(checkout) == "9.8.7"
    # no checkout beside the package: the installed metadata, when there is one
    assert package_version(tmp_path / "missing.toml") in (UNKNOWN, project_version())
    assert package_version(other) in (UNKNOWN, project_version())


def test_the_program_is_named_as_it_was_called() -> None:
    assert program_name("/venv/bin/s3-sync") == "s3-sync"
    assert program_name("/repo/sync_service/main.py") == "python -m sync_service.main"
