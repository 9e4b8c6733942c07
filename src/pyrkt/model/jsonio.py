"""JSON for the hot path: the standard library's C scanner and encoder, without ``json``'s import.

``import json`` costs a few milliseconds at start-up because its pure-Python fallbacks compile
regular expressions (and ``re`` brings ``enum``), although CPython always uses the C
accelerator ``_json`` they fall back from. ``run``, ``list`` and ``status`` read and write a
handful of small documents, so they use ``loads``/``dumps`` here: the same parser and encoder
the ``json`` module would call, with the same results and errors (``json.JSONDecodeError``,
a ValueError, is imported only when there is an error to raise). Pretty-printing (``indent``)
has no C encoder and goes through ``json`` itself. On an interpreter without ``_json`` (it is
private to CPython), both fall back to ``json``: slower to import, same results.

Every document pyrkt reads may come from outside (a config dir, an image, a pod dir), so
``loads`` bounds nesting at ``MAX_DEPTH``: deeper input is a ValueError like any other syntax
error (never a RecursionError), and what it returns can be printed and walked safely.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # not CPython, or a build without it: the public module below
    _json = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_DEPTH", "TooDeep", "dumps", "loads"]

# Far deeper than any manifest, config or record (they nest a handful of levels) and well
# within what the C scanner and the pretty-printer can recurse through.
MAX_DEPTH = 200

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes ``_json.make_scanner`` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context()) if _json is not None else None  # type: ignore[arg-type]  # typeshed wants a JSONDecoder; it reads only these attributes


def _error(msg: str, doc: str, pos: int) -> ValueError:
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


class TooDeep(ValueError):
    """A document nested deeper than ``MAX_DEPTH``."""

    def __init__(self) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")


def loads(text: str | bytes) -> Any:
    """As ``json.loads(text)``, but nesting deeper than ``MAX_DEPTH`` raises TooDeep."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan_value(text, start)
    except SystemError:
        # The scanner raises its errors as json.decoder.JSONDecodeError, which it finds only
        # once the json package is imported (it is not, on purpose): import it and scan again
        # to raise the real error.
        import json.decoder  # noqa: F401

        value, end = _scan_value(text, start)
    rest = text[end:]
    if rest.strip(_WHITESPACE):
        raise _error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    if text.count("[") + text.count("{") > MAX_DEPTH:  # fewer brackets cannot nest deeper
        _check_depth(value)
    return value


def _scan_value(text: str, start: int) -> tuple[Any, int]:
    if _scan is None:
        import json

        try:
            return json.JSONDecoder().raw_decode(text, start)  # type: ignore[no-any-return]
        except RecursionError:
            raise TooDeep() from None
    try:
        return _scan(text, start)  # type: ignore[no-any-return]
    except StopIteration as e:
        raise _error("Expecting value", text, e.value) from None
    except RecursionError:
        raise TooDeep() from None
    finally:
        _Context.memo.clear()


def _check_depth(value: Any) -> None:
    """TooDeep if ``value`` nests more than MAX_DEPTH containers (walked with a stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TooDeep()
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _no_default(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False,
          separators: tuple[str, str] | None = None) -> str:
    """As ``json.dumps(value, ...)`` for these arguments."""
    if indent is not None or _json is None:
        import json

        return json.dumps(value, indent=indent, sort_keys=sort_keys, separators=separators)
    separators = separators or (", ", ": ")
    encode = _json.make_encoder({}, _no_default, _json.encode_basestring_ascii, None,
                                separators[1], separators[0], sort_keys, False, True)
    return "".join(encode(value, 0))
