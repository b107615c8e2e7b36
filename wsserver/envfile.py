"""``--env-file``: ``NAME=value`` lines put into the environment before anything reads it.

The format of ``.env`` files as python-dotenv and docker read them, for what
people put in them: comments (``#``) and blank lines, an optional ``export``,
values in single quotes (taken as they are) or double quotes (with ``\\n``,
``\\t``, ``\\"`` and ``\\\\`` escapes), either perhaps followed by a ``#``
comment, unquoted values up to an `` #`` comment.
Variables already set in the environment win, as with python-dotenv's default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, MutableMapping

__all__ = ["parse_env_file", "load_env_file", "reread_env_file"]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
#: A quoted value, then perhaps a comment.
_SINGLE = re.compile(r"'([^']*)'\s*(?:#.*)?")
_DOUBLE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(?:#.*)?')


def parse_env_file(text: str) -> dict[str, str]:
    """The variables ``text`` sets, in order.

    Raises:
        ValueError: a line that is not ``NAME=value`` (naming its number).
    """
    variables: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"line {number}: expected NAME=value")
        name, value = match.groups()
        if (quoted := _SINGLE.fullmatch(value)) is not None:
            value = quoted[1]
        elif (quoted := _DOUBLE.fullmatch(value)) is not None:
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), quoted[1])
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        variables[name] = value
    return variables


def load_env_file(path: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the variables of the file at ``path`` that ``environ`` does not have; return them.

    Raises:
        OSError: the file cannot be read.
        ValueError: a malformed line.
    """
    variables = _read(path)
    added = {name: value for name, value in variables.items() if name not in environ}
    environ.update(added)
    return added


def reread_env_file(
    path: str, loaded: Collection[str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``environ`` with the file at ``path`` as it reads now in place of ``loaded``,
    what it set when it was loaded: for a process started after an edit (a
    supervisor's new workers). Variables set otherwise still win.

    Raises:
        OSError: the file cannot be read.
        ValueError: a malformed line.
    """
    variables = _read(path)
    environment = {name: value for name, value in environ.items() if name not in loaded}
    for name, value in variables.items():
        environment.setdefault(name, value)
    return environment


def _read(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as file:
        return parse_env_file(file.read())
