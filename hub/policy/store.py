"""The loaded rules file of this process, reloaded when the file changes or when asked."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path

from hub import clock
from hub.policy.loader import RuleProblem, RulesError, default_rules_path, load_rules_bytes, read_rules_bytes
from hub.policy.schemas import RulesFile

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None
"""(inode, mtime_ns, size) of the file; None when it cannot be stat'ed."""


def _stamp(path: Path) -> Stamp:
    try:
        stat = path.stat()
    except OSError:
        return None
    # The inode catches editors that save by renaming a new file over the old one.
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class RulesStore:
    """Holds the current rules; a broken edit keeps the previous rules and reports the error."""

    _digest: str
    _loaded_at: datetime

    def __init__(self, path: Path | None, *, check_seconds: float = 2.0) -> None:
        self.path = path if path is not None else default_rules_path()
        self.check_seconds = check_seconds
        self.version = 0
        self.last_error: RulesError | None = None
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        # Raises RulesError: a process with a broken rules file refuses to start.
        self._rules, self._seen = self._load()

    @property
    def current(self) -> RulesFile:
        """The rules in force (re-reads the file first if it changed since the last check)."""
        if time.monotonic() - self._checked_at >= self.check_seconds:
            self._check()
        return self._rules

    @property
    def loaded_at(self) -> datetime:
        """When the rules in force were loaded (hub clock)."""
        return self._loaded_at

    @property
    def digest(self) -> str:
        """sha256 (hex) of the file bytes the rules in force were read from."""
        return self._digest

    def reload(self) -> RulesFile:
        """Re-read the file now; RulesError (previous rules kept) if it is broken."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                self._rules, self._seen = self._load()
            except RulesError as exc:
                self._seen = _stamp(self.path)
                self.last_error = exc
                raise
            return self._rules

    def _check(self) -> None:
        with self._lock:
            self._checked_at = time.monotonic()
            seen = _stamp(self.path)
            if seen == self._seen:
                return
            # Remember the stamp even when loading fails, so a broken file is reported once,
            # not at every check, and retried when it is saved again.
            self._seen = seen
            try:
                self._rules, self._seen = self._load()
            except RulesError as exc:
                self.last_error = exc
                first = exc.problems[0] if exc.problems else None
                # The file's content (and pydantic's echo of it) stays out of the logs.
                log.warning(
                    "rules file %s not reloaded (%d problem(s), first at line %s, field %s); keeping version %d",
                    self.path,
                    len(exc.problems),
                    first.line if first else None,
                    first.field if first else None,
                    self.version,
                )

    def _load(self) -> tuple[RulesFile, Stamp]:
        """Read, validate and install the file; the stamp is taken first so a racing save is seen later.

        Every failure is a RulesError: the loader is meant to raise nothing else, but a file that surprises
        it must still be a refused edit (previous rules kept, ``last_error`` set), not a crash of the request
        or job that happened to notice the save.
        """
        seen = _stamp(self.path)
        try:
            data = read_rules_bytes(self.path)
            rules = load_rules_bytes(data, str(self.path))
        except RulesError:
            raise
        except Exception as exc:
            raise self._unexpected(exc) from None
        self._digest = hashlib.sha256(data).hexdigest()
        self._loaded_at = clock.now()
        self.version += 1
        self.last_error = None
        if self.version > 1:
            log.info("rules file %s loaded as version %d (sha256 %s)", self.path, self.version, self._digest[:12])
        return rules, seen

    def _unexpected(self, exc: Exception) -> RulesError:
        """``exc`` (a loader defect) as a refused file, logged by type and place: its message may quote the file."""
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        log.warning("rules file %s: the loader raised %s at %s", self.path, type(exc).__name__, where)
        message = f"the hub could not read this file ({type(exc).__name__} in its loader); please report it"
        return RulesError([RuleProblem(str(self.path), None, None, None, message)])
