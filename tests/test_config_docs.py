"""The one definition of the settings drives the docs page and .env.example: both are current,
and what .env.example shows as each default is the default the service uses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sync_service.models.config import SETTINGS, SyncConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_page_and_env_example_are_generated_from_the_settings() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    example = (REPO_ROOT / ".env.example").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in page
        assert f"\n#{setting.env}={setting.default}\n" in example


def test_env_example_with_every_line_uncommented_gives_the_defaults(tmp_path: Path) -> None:
    # given .env.example as a user would copy it, and again with every setting switched on
    example = (REPO_ROOT / ".env.example").read_text()
    (tmp_path / "copied.env").write_text(example)
    (tmp_path / "all.env").write_text(re.sub(r"^#([A-Z0-9_]+=)", r"\1", example, flags=re.M))
    # then both configure exactly what no configuration does
    defaults = SyncConfig.from_env({}, env_file=None)
    assert SyncConfig.from_env({}, env_file=tmp_path / "copied.env") == defaults
    assert SyncConfig.from_env({}, env_file=tmp_path / "all.env") == defaults


def test_every_config_attribute_comes_from_one_setting() -> None:
    from dataclasses import fields

    attrs = [s.attr for s in SETTINGS if s.attr]
    assert len(attrs) == len(set(attrs))
    derived = {"customer_s3_region_set", "source_store"}  # from CUSTOMER_S3_REGION and SOURCE_URL
    assert {f.name for f in fields(SyncConfig)} == set(attrs) | derived


def test_help_names_every_exit_code() -> None:
    from sync_service import commands

    result = subprocess.run([sys.executable, "-m", "sync_service.main", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    codes = {value for name, value in vars(commands).items() if name.startswith("EXIT_") and isinstance(value, int)}
    for code in sorted(codes | {0}):
        assert re.search(rf"\b{code} ", result.stdout), (code, result.stdout)
