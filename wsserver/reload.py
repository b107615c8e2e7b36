"""``--reload``: which source files changed since the last look, by polling their mtimes.

The supervisor (:mod:`.supervisor`) looks every :data:`POLL_INTERVAL` seconds
(``--reload-delay``)
and, when a file changed, restarts its workers as on SIGHUP: a new worker is
started and, once it accepts, the old one retires (its WebSockets are closed
with 1012, service restart, and clients reconnect). An edit that breaks the
application leaves the old worker serving and says why in the log; the next
edit tries again. Polling needs no dependency, and the trees it watches (an
application's own directory) are small: a few hundred ``stat`` calls a look.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import importlib.util
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import PurePath

__all__ = [
    "FileWatcher",
    "DIR_ENTRIES",
    "MAX_ENTRIES",
    "POLL_INTERVAL",
    "SKIPPED_DIRS",
    "INCLUDE",
    "EXCLUDE",
    "forget_bytecode",
    "is_pattern",
]

#: Seconds between two looks at the files, unless said otherwise (``--reload-delay``).
POLL_INTERVAL = 0.5

#: The file names watched, and those never watched (hidden files, editors'
#: lock and backup files: ``.#app.py``, ``app.py~``), unless said otherwise.
INCLUDE = ("*.py",)
EXCLUDE = (".*", "*~", "~*")

#: Directories never looked into, besides hidden ones and virtual environments
#: (a ``pyvenv.cfg`` in them): caches, installed packages and build output,
#: which change without the application's code changing.
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})

#: A look reads at most this many directory entries (files and directories,
#: watched or not): a directory given by mistake, say /, must not make each
#: look take seconds. Beyond it, the rest is not watched (the walk goes level
#: by level from the top: the application's own files come first).
MAX_ENTRIES = 20_000

#: A directory under a watched one that holds more entries than this is not
#: looked into (uploads, a data set beside the code), so that it cannot spend
#: a look's :data:`MAX_ENTRIES` on itself and leave the code beside it
#: unwatched; its first this many entries are counted against the bound.
DIR_ENTRIES = 5_000

Snapshot = dict[str, tuple[int, int]]


class FileWatcher:
    """The files ``include`` names under ``directories``, and what changed since the last look.

    As uvicorn's ``--reload-include`` and ``--reload-exclude``: a file is watched
    when its path matches a pattern of :data:`INCLUDE` or ``include`` and none
    of :data:`EXCLUDE` or ``exclude``, matched from the right as
    ``PurePath.match`` does (``*.html`` any such file, ``templates/*.html``
    those in a directory named ``templates``, an absolute pattern the whole
    path), but for ``**``, which matches any number of directories, as in
    glob (``templates/**/*.html``: those anywhere under ``templates``),
    within the watched tree (not the directories above it, unless the
    pattern is absolute: ``tmp/**`` is not the whole of a project in /tmp).
    Directories whose paths match an exclusion, as a file's would, are not
    looked into (``tests/*``: the files in ``tests`` and the trees under it,
    as uvicorn's; ``gen`` or ``gen/``: any ``gen``), nor one an exclusion
    names that exists (``--reload-exclude tests/fixtures``: its whole tree).
    Directories linked into the tree are followed, each walked once. A
    pattern given in ``include`` is no longer excluded by default, and one
    given in ``exclude`` no longer included by default
    (``exclude=["*.py"]``: no Python files); a name given
    in ``include`` as it is (``.env``, ``config/app.toml``, no wildcard) is
    watched whatever excludes it, in a directory excluded or hidden too
    (looked for there, under each directory, unless absolute).

    Args:
        directories: the trees to watch.
        include, exclude: file name patterns, added to the defaults.
        interval: seconds between two looks (the supervisor's loop sleeps that long).
    """

    def __init__(
        self,
        directories: Sequence[str],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.directories = [os.path.abspath(d) for d in directories]
        include = [p for p in include if p]  # (an empty one matches nothing)
        exclude = [p for p in exclude if p]
        self.patterns = _merged(INCLUDE, include, exclude)
        self.excluded = _merged(EXCLUDE, exclude, include)
        #: Names given as they are (no wildcard): watched whatever excludes them.
        self.named = [p for p in include if not any(c in p for c in "*?[")]
        #: What prunes a directory, besides an exclusion its path matches:
        #: the directories an exclusion names, from the current directory.
        self._excluded_dirs = frozenset(os.path.abspath(p) for p in exclude if os.path.isdir(p))
        self._named = _Patterns(self.named)
        self._included = _Patterns(self.patterns)
        self._excluding = _Patterns(self.excluded)
        self.interval = interval
        self.truncated = False
        #: The directories the last look did not look into: over DIR_ENTRIES.
        self.crowded: list[str] = []
        self._seen = self._snapshot()

    def changed(self) -> list[str]:
        """The files added, removed or modified since the last call (or since made), sorted.

        When a look stopped at MAX_ENTRIES (``truncated``), files it did not
        reach are not taken for removed.
        """
        now = self._snapshot()
        before = self._seen
        if self.truncated:
            now = {**before, **now}
        self._seen = now
        return sorted(
            path for path in before.keys() | now.keys() if before.get(path) != now.get(path)
        )

    def _snapshot(self) -> Snapshot:
        found: Snapshot = {}
        self.truncated = False
        self.crowded = []
        for path in self._files():
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed between the listing and the stat
            found[path] = (st.st_mtime_ns, st.st_size)
        return found

    def _files(self) -> Iterable[str]:
        """The matching files, until MAX_ENTRIES entries were read."""
        # Names given as they are, first: where they say (under each
        # directory, or their absolute path), whatever excludes or hides the
        # directory they are in, which the walk does not look into.
        for name in self.named:
            tops = [""] if os.path.isabs(name) else self.directories
            for top in tops:
                path = os.path.normpath(os.path.join(top, name))
                if os.path.isfile(path):
                    yield path
        entries = 0
        # Level by level from the top, so that a deep tree cannot take the
        # look from what is nearer the top. Directories linked into the tree
        # are followed (a shared package linked in), each directory walked
        # once, however many links lead to it (a link back up would loop).
        walked: set[tuple[int, int]] = set()
        # (With each, how many parts the path of the tree's top has: a
        # pattern's '**' spans the parts below them only.)
        waiting: collections.deque[tuple[str, bool, int]] = collections.deque(
            (top, True, len(PurePath(top).parts)) for top in self.directories
        )
        while waiting:
            root, watched, floor = waiting.popleft()
            try:
                st = os.stat(root)
            except OSError:
                continue  # (removed meanwhile)
            if (st.st_dev, st.st_ino) in walked:
                continue
            walked.add((st.st_dev, st.st_ino))
            # (A watched directory is read as far as the look's bound goes;
            # one under it, DIR_ENTRIES at most.)
            left = MAX_ENTRIES - entries
            cap = left if watched else min(left, DIR_ENTRIES)
            try:
                with os.scandir(root) as listing:
                    listed = list(itertools.islice(listing, cap + 1))
            except OSError:
                continue  # (unreadable, or removed meanwhile)
            if len(listed) > cap:
                if cap == left:
                    self.truncated = True
                    return
                self.crowded.append(root)
                entries += cap
                continue
            entries += len(listed)
            for entry in listed:
                path = os.path.join(root, entry.name)
                try:
                    is_dir = entry.is_dir()  # (a link to a directory too)
                except OSError:
                    is_dir = False
                if is_dir:
                    if self._looked_into(entry.name, root, floor):
                        waiting.append((path, False, floor))
                    continue
                name = entry.name
                if self._named.match(name, root) or (
                    self._included.match(name, root, floor)
                    and not self._excluding.match(name, root, floor)
                ):
                    yield path

    def _looked_into(self, name: str, root: str, floor: int) -> bool:
        """Whether the walk goes into the directory ``name`` in ``root``
        (in the tree whose top's path has ``floor`` parts)."""
        path = os.path.join(root, name)
        return (
            not name.startswith(".")
            and name not in SKIPPED_DIRS
            and not self._excluding.match(name, root, floor)
            and path not in self._excluded_dirs
            and not os.path.exists(os.path.join(path, "pyvenv.cfg"))
        )


def forget_bytecode(paths: Iterable[str]) -> None:
    """Remove the cached bytecode (``__pycache__``, or under ``PYTHONPYCACHEPREFIX``)
    of the Python files among ``paths``, which changed.

    Python takes a ``.pyc`` as current when the source's mtime, in whole
    seconds, and its size are those it was compiled from: an edit of the same
    size within the same second as the one before (a digit changed) would run,
    in the new worker, the code from before it.
    """
    for path in paths:
        if not path.endswith(".py"):
            continue
        for optimization in ("", 1, 2):
            with contextlib.suppress(NotImplementedError, ValueError, OSError):
                # (NotImplementedError: an implementation without a cache tag.)
                os.unlink(importlib.util.cache_from_source(path, optimization=optimization))


def is_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is one a path can be matched with (``.``, a path of
    nothing, is not: pathlib raises ValueError at each file)."""
    try:
        PurePath("x").match(pattern)
    except ValueError:
        return False
    return True


class _Patterns:
    """Patterns a file is matched with, each look: those of a name alone
    (``*.py``, ``.*``), the most, in one regular expression of the name,
    as ``PurePath.match`` matches them; those with ``**`` part by part
    (:class:`_Glob`), the directory's parts once for the files in it; the
    others (a directory in them) with ``PurePath.match``. (PurePath for each
    of the tens of thousands of files a look may read took most of its time:
    a third of a second of CPU for 18,000 files, twice a second, with the
    server idle.)"""

    def __init__(self, patterns: Sequence[str]) -> None:
        alone = [p for p in patterns if "/" not in p and os.sep not in p]
        self._names = (
            re.compile("|".join(fnmatch.translate(os.path.normcase(p)) for p in alone))
            if alone
            else None
        )
        #: The others, each with what its last part matches (the file's name,
        #: unless it is ``**``), looked at before the whole path is.
        self._paths = [
            (_name_matcher(PurePath(p).name), p)
            for p in patterns
            if p not in alone and "**" not in p
        ]
        self._globs = [_Glob(p) for p in patterns if p not in alone and "**" in p]
        #: The directory the last file matched was in, and where each glob's
        #: match stands once its parts are read.
        self._directory: tuple[str, int] | None = None
        self._states: list[frozenset[int]] = []
        self._depth = 0  # (its number of parts)

    def match(self, name: str, root: str, floor: int = 0) -> bool:
        """Whether the file ``name``, in the directory ``root``, matches one of
        them (a ``**`` spanning none of the first ``floor`` parts of the
        path: the watched directory's and those above it)."""
        name = os.path.normcase(name)
        if self._names is not None and self._names.match(name):
            return True
        pure = None
        for last, pattern in self._paths:
            if last is not None and not last.match(name):
                continue
            pure = pure or PurePath(root, name)
            if pure.match(pattern):
                return True
        if not self._globs:
            return False
        directory = (root, floor)
        if directory != self._directory:  # (the walk reads a directory's files together)
            names = [os.path.normcase(part) for part in PurePath(directory[0]).parts]
            self._states = [glob.read(names, floor) for glob in self._globs]
            self._depth = len(names)
            self._directory = directory
        return any(
            glob.matches(states, name, self._depth, floor)
            for glob, states in zip(self._globs, self._states, strict=True)
        )


def _name_matcher(last: str) -> re.Pattern[str] | None:
    """What a pattern whose last part is ``last`` needs of a file's name
    (None: ``**``, any name)."""
    return None if last == "**" else re.compile(fnmatch.translate(os.path.normcase(last)))


class _Glob:
    """A pattern with ``**``: ``path.match(pattern)``, but a ``**`` of its own
    matches any number of directories (none too), as in glob:
    ``src/**/*.html`` any such file under ``src``. (PurePath.match, until
    Python 3.13's ``full_match``, takes it for ``*``: exactly one directory.)
    In a relative pattern, matched from the right, a ``**`` spans none of the
    path's first ``floor`` parts (the watched directory's): ``tmp/**`` would
    else take in every file of a project under /tmp.

    A path's parts are read from the left, each look: where the match may
    stand after each (how many of the pattern's parts are matched: a set
    of them, as an automaton's states), so that a directory's parts are
    read once for all its files."""

    def __init__(self, pattern: str) -> None:
        pure = PurePath(pattern)
        self.relative = not pure.is_absolute()
        self._parts: list[re.Pattern[str] | None] = [
            None if part == "**" else re.compile(fnmatch.translate(os.path.normcase(part)))
            for part in pure.parts
        ]
        self._last = _name_matcher(pure.name)
        self._begun = self._closed({0})
        #: From each state, whether the end is reached reading no more names.
        self._ends = [
            len(self._parts) in self._closed({state}) for state in range(len(self._parts) + 1)
        ]

    def read(self, names: Sequence[str], floor: int) -> frozenset[int]:
        """Where the match stands once ``names`` (a directory's parts) are read
        (for :meth:`matches`)."""
        states = self._begun
        for index, name in enumerate(names):
            states = self._step(states, name, index, floor)
        # (And, relative, where a match that begins with the next part stands.)
        return states | self._begun if self.relative else states

    def matches(self, states: frozenset[int], name: str, index: int, floor: int) -> bool:
        """Whether the path whose directory left ``states``, and whose last
        part, at ``index``, is ``name``, matches."""
        if self._last is not None and not self._last.match(name):
            return False
        if not self.relative:
            floor = 0
        ends = self._ends
        for state in states:
            if state == len(self._parts):
                continue
            part = self._parts[state]
            if part is None:
                if index >= floor and ends[state]:
                    return True
            elif ends[state + 1] and part.match(name):
                return True
        return False

    def _step(self, states: frozenset[int], name: str, index: int, floor: int) -> frozenset[int]:
        if self.relative:  # (from the right: its first part at any place)
            states |= self._begun
        else:  # (an absolute pattern's '**' spans what it says)
            floor = 0
        reached = set()
        for state in states:
            if state == len(self._parts):
                continue
            part = self._parts[state]
            if part is None:  # '**' reads a name and stays, below the floor only
                if index >= floor:
                    reached.add(state)
            elif part.match(name):
                reached.add(state + 1)
        return self._closed(reached)

    def _closed(self, states: set[int]) -> frozenset[int]:
        """``states``, and those a ``**`` reading no name leads to from them."""
        for state in list(states):
            while state < len(self._parts) and self._parts[state] is None:
                state += 1
                states.add(state)
        return frozenset(states)


def _merged(defaults: Sequence[str], given: Sequence[str], overriding: Sequence[str]) -> list[str]:
    """``defaults`` less the patterns ``overriding`` names, then those ``given``, once each."""
    merged = [pattern for pattern in defaults if pattern not in overriding]
    merged += [pattern for pattern in given if pattern not in merged]
    return merged
