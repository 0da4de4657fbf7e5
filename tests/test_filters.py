"""The filter rules as a unit: globs, include/exclude, size bounds, and how SyncConfig reads them."""

from __future__ import annotations

import re

import pytest

from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig
from sync_service.planning.filters import ObjectFilter
from sync_service.utils.globs import compile_glob, matches, split_patterns


def selects(pattern: str, path: str) -> bool:
    return matches(compile_glob(pattern), path)


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("*.tmp", "a.tmp", True),
    ("*.tmp", "deep/down/a.tmp", True),
    ("*.tmp", "a.tmp.txt", False),
    ("*.tmp", "dir.tmp/a.txt", False),
    (".DS_Store", "photos/.DS_Store", True),
    (".DS_Store", "photos/x.DS_Store", False),
    ("_temporary/**", "_temporary/0/part-1", True),
    ("_temporary/**", "out/_temporary/0/part-1", True),
    ("_temporary/**", "my_temporary/part", False),
    ("cache/", "a/cache/x/y", True),
    ("/top/*.txt", "top/a.txt", True),
    ("/top/*.txt", "x/top/a.txt", False),
    ("/top/*.txt", "top/sub/a.txt", False),
    ("/top/**.txt", "top/sub/a.txt", True),
    ("**/x.log", "x.log", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("file?", "file/", False),
    ("[abc]*.csv", "data/b-1.csv", True),
    ("[abc]*.csv", "data/d-1.csv", False),
    ("[!abc]*.csv", "data/d-1.csv", True),
    ("[0-9][0-9].jpg", "img/42.jpg", True),
    ("a+b(1).txt", "a+b(1).txt", True),
    ("*.TMP", "a.tmp", False),  # case matters, as in rclone
])
def test_globs_match_as_rclone_does(pattern: str, path: str, expected: bool) -> None:
    assert selects(pattern, path) is expected


def test_a_pattern_list_splits_on_commas_and_newlines_but_not_inside_a_class() -> None:
    assert split_patterns("*.tmp, .DS_Store\n_temporary/**\n\n[a,b]*.txt,") == (
        "*.tmp", ".DS_Store", "_temporary/**", "[a,b]*.txt")
    assert selects("[a,b]*.txt", ",x.txt")


@pytest.mark.parametrize("pattern", ["[abc", "x/[", "[]", "[!]", "/"])
def test_a_bad_glob_is_a_value_error(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_glob(pattern)


def test_an_object_is_synced_when_included_not_excluded_and_within_the_sizes() -> None:
    rules = ObjectFilter(include=("docs/**", "*.jpg"), exclude=("*.tmp", "docs/private/**"),
                         min_size=10, max_size=1 << 20)
    assert rules.skip_reason("docs/a.txt", 100) is None
    assert rules.skip_reason("photos/b.jpg", 10) is None  # bounds are inclusive
    assert rules.skip_reason("photos/b.jpg", 1 << 20) is None
    assert rules.skip_reason("docs/a.tmp", 100) == "excluded"  # exclude wins over include
    assert rules.skip_reason("docs/private/a.txt", 100) == "excluded"
    assert rules.skip_reason("notes/a.txt", 100) == "not_included"
    assert rules.skip_reason("docs/a.txt", 9) == "too_small"
    assert rules.skip_reason("docs/a.txt", (1 << 20) + 1) == "too_large"
    assert rules.skip_reason("docs/a.txt", None) is None  # size not known yet: the name decides
    assert rules.active and not ObjectFilter().active
    assert ObjectFilter().skip_reason("anything/at/all", 0) is None


def config(**env: str) -> SyncConfig:
    return SyncConfig.from_env(env, env_file=None)


def test_the_config_reads_the_rules() -> None:
    read = config(INCLUDE="docs/**,*.jpg", EXCLUDE="*.tmp\n.DS_Store", MIN_SIZE="1K",
                  MAX_SIZE="1G")
    assert (read.include, read.exclude) == (("docs/**", "*.jpg"), ("*.tmp", ".DS_Store"))
    assert (read.min_size, read.max_size) == (1024, 1 << 30)
    assert ObjectFilter.from_config(read).skip_reason("docs/x.tmp", 5000) == "excluded"
    default = config()
    assert (default.include, default.exclude, default.min_size, default.max_size) == ((), (), None, None)


@pytest.mark.parametrize(("env", "message"), [
    ({"EXCLUDE": "*.tmp,[abc"}, "EXCLUDE: unclosed '['"),
    ({"INCLUDE": "[]"}, "INCLUDE: unclosed '['"),  # a ']' first is a member, as in rclone
    ({"MAX_SIZE": "lots"}, "MAX_SIZE must be a size"),
    ({"MIN_SIZE": "-1"}, "MIN_SIZE must be a size"),
    ({"MIN_SIZE": "2M", "MAX_SIZE": "1M"}, "MIN_SIZE (2097152 bytes) is above MAX_SIZE"),
])
def test_a_bad_rule_is_a_clear_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**env)
