"""``--env-file``: ``NAME=value`` lines put into the environment before anything reads it.

The format of ``.env`` files as python-dotenv (uvicorn's) reads them, for what
people put in them: comments (``#``) and blank lines, an optional ``export``,
values in single quotes (taken as they are, but for ``\\'`` and ``\\\\``) or
double quotes (with ``\\n``, ``\\t``, ``\\"``, ``\\\\`` ... escapes), either of
which may span lines (a PEM key) and be followed by a ``#`` comment, unquoted
values up to a `` #`` comment; names of letters, digits, ``_``, ``.`` and
``-`` (``APP-NAME``), or in single quotes; ``${NAME}`` and
``${NAME:-default}`` in unquoted and double-quoted values stand for a
variable's value (the environment's, else one the file set above; else the
default, else nothing); a line of a name alone sets nothing. A quoted value
whose quote does not close, or that text other than a comment follows, is
refused (python-dotenv skips it with a warning, leaving the variable unset).
Variables already set in the environment win, as with python-dotenv's default.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Collection, Mapping, MutableMapping

__all__ = ["parse_env_file", "load_env_file", "reread_env_file"]

#: A line's name, after an optional ``export``: letters, digits, ``_``, ``.``
#: and ``-`` (``APP-NAME``, as python-dotenv and Node's dotenv take it), or
#: in single quotes (python-dotenv's); then ``=`` and a value, or nothing.
_NAME = re.compile(r"[ \t]*(?:export[ \t]+)?(?:'([^'=\n\x00]+)'|([A-Za-z0-9_.-]+))[ \t]*")
#: What may follow a value (or a name alone) on its line.
_LINE_END = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|\Z)")
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
#: The closing quote of a double-quoted value, or a single-quoted one (not
#: one a backslash escapes: ``\\'`` and ``\\\\`` are a single-quoted value's only
#: escapes, as in python-dotenv).
_DOUBLE_END = re.compile(r'(?:[^"\\]|\\.)*"', re.S)
_SINGLE_END = re.compile(r"(?:[^'\\]|\\.)*'", re.S)
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_env_file(text: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables ``text`` sets, in order; ``${NAME}`` taken from ``environ``
    first (it wins over the file), then from what the file set above.

    Raises:
        ValueError: a line that is not ``NAME=value`` (or a name alone),
            naming its number.
    """
    environ = {} if environ is None else environ
    text = text.replace("\r\n", "\n")
    variables: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        number = text.count("\n", 0, pos) + 1
        blank = _LINE_END.match(text, pos)
        if blank is not None and blank.end() > pos:
            pos = blank.end()  # (a blank or comment line)
            continue
        name_match = _NAME.match(text, pos)
        if name_match is None or name_match.end() == pos:
            raise ValueError(f"line {number}: expected NAME=value")
        name, pos = name_match[1] or name_match[2], name_match.end()
        if text.startswith("=", pos):
            try:
                value, pos = _value(
                    text, pos + 1, lambda found: {**variables, **environ}.get(found)
                )
            except ValueError as exc:
                raise ValueError(f"line {number}: {name}: {exc}") from None
            variables[name] = value
        end = _LINE_END.match(text, pos)
        if end is None:
            raise ValueError(f"line {number}: expected NAME=value")
        pos = end.end()
    return variables


def _value(text: str, pos: int, lookup: Callable[[str], str | None]) -> tuple[str, int]:
    """The value that starts at ``pos`` (after ``=``), and where its line goes on."""
    start = pos
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    quote = text[pos : pos + 1]
    if quote in ("'", '"'):
        # Refused, not taken with its quote (a token '"s3cret'), nor skipped
        # as python-dotenv does, with a warning: the variable unset.
        closed = (_SINGLE_END if quote == "'" else _DOUBLE_END).match(text, pos + 1)
        if closed is None:
            raise ValueError(f"its value's {quote} does not close")
        if _LINE_END.match(text, closed.end()) is None:
            raise ValueError(f"text after its value's closing {quote} (a comment starts with #)")
        raw = text[pos + 1 : closed.end() - 1]
        if quote == "'":
            return re.sub(r"\\([\\'])", r"\1", raw), closed.end()
        value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), raw, flags=re.S)
        return _expanded(value, lookup), closed.end()
    # Unquoted: to the line's end, less a comment (" #", the blanks after
    # "=" included: "A=  # c" is empty).
    end = text.find("\n", pos)
    end = len(text) if end == -1 else end
    value = re.split(r"[ \t]+#", text[start:end], maxsplit=1)[0].rstrip().lstrip(" \t")
    return _expanded(value, lookup), end


def _expanded(value: str, lookup: Callable[[str], str | None]) -> str:
    """``value`` with each ``${NAME}`` (or ``${NAME:-default}``) replaced."""
    if "${" not in value:
        return value

    def replaced(reference: re.Match[str]) -> str:
        found = lookup(reference[1])
        return found if found is not None else (reference[2] or "")

    return _REFERENCE.sub(replaced, value)


def load_env_file(path: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the variables of the file at ``path`` that ``environ`` does not have; return them.

    Raises:
        OSError: the file cannot be read.
        ValueError: a malformed line.
    """
    variables = _read(path, environ)
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
    environment = {name: value for name, value in environ.items() if name not in loaded}
    variables = _read(path, environment)
    for name, value in variables.items():
        environment.setdefault(name, value)
    return environment


def _read(path: str, environ: Mapping[str, str]) -> dict[str, str]:
    with open(path, "rb") as file:
        data = file.read()
    # UTF-8, less the byte order mark some Windows editors begin it with; or
    # UTF-16 with its mark, as Windows PowerShell 5's ">" writes.
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as exc:  # (its own words count bytes: the line, as others say)
        line = exc.object[: exc.start].decode(exc.encoding, "replace").count("\n") + 1
        said = "UTF-16" if utf16 else "UTF-8"
        bad = exc.object[exc.start : exc.start + 1].hex()
        problem = f"line {line}: not {said} (byte 0x{bad}): save the file as UTF-8"
        raise ValueError(problem) from None
    variables = parse_env_file(text, environ)
    for name, value in variables.items():
        if "\x00" in value:  # (what the environment of a process cannot hold)
            raise ValueError(f"{name}: a NUL character in its value")
    return variables
