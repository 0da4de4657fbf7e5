"""Filter globs as rclone reads them: ``*`` (within one path segment), ``**`` (any depth), ``?``
(one character but ``/``), ``[…]`` (a character class, ``[!…]`` or ``[^…]`` negated).

A pattern that starts with ``/`` matches from the top (the prefix); any other pattern matches
the end of the path on a segment boundary, so ``*.tmp`` and ``.DS_Store`` match at any depth and
``_temporary/**`` matches everything under any folder named ``_temporary``. A pattern ending in
``/`` means everything below that folder (``cache/`` is ``cache/**``).
"""

from __future__ import annotations

import re


def split_patterns(text: str) -> tuple[str, ...]:
    """The patterns of a comma- or newline-separated list (a comma inside ``[…]`` belongs to
    the class); blanks dropped, spaces around each pattern trimmed."""
    patterns: list[str] = []
    current: list[str] = []
    in_class = False
    for char in text:
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif char in ",\n" and not in_class:
            patterns.append("".join(current))
            current = []
            continue
        current.append(char)
    patterns.append("".join(current))
    return tuple(p.strip() for p in patterns if p.strip())


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression matching the paths ``pattern`` selects; ValueError when it is not
    a glob (an unclosed ``[``, an empty class)."""
    anchored = pattern.startswith("/")
    body = pattern.lstrip("/")
    if not body:
        raise ValueError(f"empty pattern {pattern!r}")
    if body.endswith("/"):
        body += "**"
    parts: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if body.startswith("**", i):
            # ``dir/**`` also takes ``dir/a/b``; ``**/x`` takes ``x`` at the top too.
            if body.startswith("**/", i):
                parts.append("(?:.*/)?")
                i += 3
            else:
                parts.append(".*")
                i += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[":
            end = body.find("]", i + 2 if body[i + 1:i + 2] in ("!", "^", "]") else i + 1)
            if end < 0:
                raise ValueError(f"unclosed '[' in pattern {pattern!r}")
            members = body[i + 1:end]
            negated = members[:1] in ("!", "^")
            members = members[1:] if negated else members
            if not members:
                raise ValueError(f"empty '[]' in pattern {pattern!r}")
            escaped = members.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            # A negated class never takes the separator: ``*`` does not either.
            parts.append(f"[^/{escaped}]" if negated else f"[{escaped}]")
            i = end + 1
            continue
        else:
            parts.append(re.escape(char))
        i += 1
    start = "" if anchored else "(?:.*/)?"
    return re.compile(start + "".join(parts))


def matches(pattern: re.Pattern[str], path: str) -> bool:
    """True when a compiled glob selects ``path`` (relative to the prefix, no leading ``/``)."""
    return pattern.fullmatch(path) is not None
