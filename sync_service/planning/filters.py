"""What is synced (SPEC §4): ``INCLUDE`` and ``EXCLUDE`` globs on the path relative to the
prefix, and ``MIN_SIZE``/``MAX_SIZE``. Pure: the planners, the event replay, the drift scan and
``check`` ask the same ``ObjectFilter``, so listings, events and reconcile see one view.

As rclone reads ``--include``/``--exclude``/``--min-size``/``--max-size``: an object is synced
when it matches some include pattern (or none is given), no exclude pattern, and its size is
within the bounds (both inclusive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sync_service.models.config import SyncConfig
from sync_service.utils.globs import compile_glob, matches

#: The reasons a filter gives, as they are counted in a run report's ``skipped_reasons``.
EXCLUDED = "excluded"
NOT_INCLUDED = "not_included"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
FILTER_REASONS = (EXCLUDED, NOT_INCLUDED, TOO_SMALL, TOO_LARGE)


@dataclass(frozen=True)
class ObjectFilter:
    """The rules that select what is synced; the default selects everything."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", tuple(compile_glob(p) for p in self.include))
        object.__setattr__(self, "_exclude", tuple(compile_glob(p) for p in self.exclude))

    @classmethod
    def from_config(cls, config: SyncConfig) -> ObjectFilter:
        """The filter ``INCLUDE``, ``EXCLUDE``, ``MIN_SIZE`` and ``MAX_SIZE`` describe."""
        return cls(config.include, config.exclude, config.min_size, config.max_size)

    @property
    def active(self) -> bool:
        """True when some rule is set (the default filter selects everything)."""
        return bool(self.include or self.exclude) or self.min_size is not None or self.max_size is not None

    def path_reason(self, path: str) -> str | None:
        """Why ``path`` is outside the synced view by its name alone, or None."""
        if any(matches(p, path) for p in self._exclude):
            return EXCLUDED
        if self._include and not any(matches(p, path) for p in self._include):
            return NOT_INCLUDED
        return None

    def size_reason(self, size: int) -> str | None:
        """Why an object of ``size`` bytes is outside the synced view, or None."""
        if self.min_size is not None and size < self.min_size:
            return TOO_SMALL
        if self.max_size is not None and size > self.max_size:
            return TOO_LARGE
        return None

    def skip_reason(self, path: str, size: int | None) -> str | None:
        """Why the object at ``path`` (``size`` bytes; None: not known yet) is not synced, or
        None when it is."""
        reason = self.path_reason(path)
        if reason is None and size is not None:
            reason = self.size_reason(size)
        return reason

    def describe(self) -> str:
        """The rules in one line, for the log."""
        rules = [f"INCLUDE={','.join(self.include)}" if self.include else "",
                 f"EXCLUDE={','.join(self.exclude)}" if self.exclude else "",
                 f"MIN_SIZE={self.min_size}" if self.min_size is not None else "",
                 f"MAX_SIZE={self.max_size}" if self.max_size is not None else ""]
        return " ".join(r for r in rules if r) or "everything"


#: Selects every object: what a caller without rules uses.
EVERYTHING = ObjectFilter()
