"""pyrkt.model.jsonio gives what the json module gives, errors included."""

from __future__ import annotations

import json

import pytest

from pyrkt.model import jsonio

DOCS = ['{"a": [1, 2.5, "x\\u00e9\\n", null, true, false, {"b": {}}]}', " [1] \n", '"s"', "1e5", "-0",
        '{"a":1}\n', '[1, "two", [3, [4]]]']


@pytest.mark.parametrize("doc", DOCS)
def test_loads_parses_as_json_does(doc: str) -> None:
    assert jsonio.loads(doc) == json.loads(doc)
    assert jsonio.loads(doc.encode()) == json.loads(doc.encode())


def test_loads_reads_utf8_bytes_with_a_bom() -> None:
    assert jsonio.loads('{"é": 1}'.encode("utf-8-sig")) == {"é": 1}


@pytest.mark.parametrize("bad", ["", "   ", "{", "[1] x", '{"a":}', "[1,]", '"\x01"', "{'a': 1}"])
def test_loads_raises_the_same_error_as_json(bad: str) -> None:
    with pytest.raises(ValueError) as ours:
        jsonio.loads(bad)
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)
    assert type(ours.value) is type(theirs.value)


VALUES = [{"a": [1, 2.5, "é\n\"", None, True, False]}, [], {}, {"z": 1, "a": {"y": [2, 1]}}, "s", 3]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("kw", [{}, {"sort_keys": True}, {"separators": (",", ":")}, {"indent": 2},
                                {"indent": 1, "sort_keys": True}])
def test_dumps_writes_what_json_writes(value: object, kw: dict[str, object]) -> None:
    assert jsonio.dumps(value, **kw) == json.dumps(value, **kw)  # type: ignore[arg-type]


def test_dumps_refuses_what_json_cannot_encode() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})
    with pytest.raises(ValueError, match="Circular"):
        loop: list[object] = []
        loop.append(loop)
        jsonio.dumps(loop)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("doc", [nested(200_000), '{"a": ' * 200_000 + "1" + "}" * 200_000,
                                 nested(jsonio.MAX_DEPTH + 1), '{"a": [' + nested(jsonio.MAX_DEPTH) + "]}"],
                         ids=["arrays-200000", "objects-200000", "arrays-201", "object-array-202"])
def test_nesting_deeper_than_the_bound_is_a_value_error_not_a_recursion_error(doc: str) -> None:
    with pytest.raises(jsonio.TooDeep, match=f"nested more than {jsonio.MAX_DEPTH} levels deep"):
        jsonio.loads(doc)
    assert issubclass(jsonio.TooDeep, ValueError)  # every reader that handles bad JSON handles it


def test_nesting_up_to_the_bound_parses_and_pretty_prints() -> None:
    doc = nested(jsonio.MAX_DEPTH)
    assert jsonio.loads(doc) == json.loads(doc)
    assert jsonio.loads(jsonio.dumps(jsonio.loads(doc), indent=4)) == json.loads(doc)
    wide = "[" + ", ".join(["[1]"] * 5000) + "]"  # many brackets, little depth
    assert jsonio.loads(wide) == json.loads(wide)


def test_syntax_errors_are_json_errors_in_a_process_that_never_imported_json() -> None:
    """The C scanner raises JSONDecodeError only if json.decoder is loaded: pyrkt's commands do
    not load it, and a broken net.d file gave SystemError and a traceback."""
    import subprocess
    import sys

    code = ("import sys\nfrom pyrkt.model import jsonio\nassert 'json' not in sys.modules\n"
            "for doc in ('{not json', '[1,]', '{\"a\" 1}', '\"\\x01\"', '[' * 5000):\n"
            "    try:\n        jsonio.loads(doc)\n    except ValueError as e:\n"
            "        print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "JSONDecodeError Expecting value: line 1 column 4 (char 3)",
        "JSONDecodeError Expecting ':' delimiter: line 1 column 6 (char 5)",
        "JSONDecodeError Invalid control character at: line 1 column 2 (char 1)",
        "TooDeep nested more than 200 levels deep",
    ]


# -- config-file keys, read as Go's encoding/json reads them into a struct (rkt, CNI plugins, Docker)

def test_a_key_matches_its_field_without_regard_to_case() -> None:
    assert jsonio.field({"Name": "bridge0"}, "name") == "bridge0"
    assert jsonio.field({"CNIVERSION": "0.3.1"}, "cniVersion") == "0.3.1"
    assert jsonio.field({"ipmasq": True}, "ipMasq") is True


def test_of_several_spellings_the_last_in_the_document_wins_as_in_go() -> None:
    assert jsonio.field({"name": "a", "Name": "b"}, "name") == "b"
    assert jsonio.field({"NAME": "a", "name": "b"}, "name") == "b"


def test_a_missing_field_gives_the_default() -> None:
    assert jsonio.field({"names": "x"}, "name") is None
    assert jsonio.field({}, "cniVersion", "0.4.0") == "0.4.0"


def test_unicode_simple_folding_as_go_kelvin_and_long_s() -> None:
    assert jsonio.field({"\u212aey": 1}, "key") == 1  # KELVIN SIGN folds to k
    assert jsonio.field({"\u017fecret": 2}, "secret") == 2  # LATIN SMALL LETTER LONG S folds to s


def test_unknown_keys_are_those_matching_no_field_as_written() -> None:
    doc = {"RktKind": "paths", "DATA": "/d", "stage1_images": "/x"}
    assert jsonio.unknown_keys(doc, ["rktKind", "data", "stage1-images"]) == ["stage1_images"]
