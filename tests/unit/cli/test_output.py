"""Names from outside are printed escaped: one line each, and no terminal control."""

from __future__ import annotations

import io

import pytest

from pyrkt.cli.main import main
from pyrkt.cli.output import printable, table
from pyrkt.errors import NotFound, quote


@pytest.mark.parametrize("text, shown", [
    ("busybox:1.36", "busybox:1.36"),
    ("café:été", "café:été"),  # printable non-ASCII stays as it is
    ("a b\\c", "a b\\c"),
    ("v1\nx", "v1\\nx"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("a\tb\rc\x00d\x7f", "a\\tb\\rc\\x00d\\x7f"),
    ("\x85\u2028\u202eevil", "\\u0085\\u2028\\u202eevil"),  # C1, line separator, bidi override
    ("\U000e0001", "\\U000e0001"),
])
def test_printable_escapes_what_a_terminal_would_act_on_as_go_quote_does(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_table_cells_are_escaped_and_stay_on_one_row() -> None:
    out = io.StringIO()
    table([["sha256:1", "evil:v1\nx\x1b[31mred", "2 KiB"]], header=["ID", "NAME", "SIZE"], out=out)
    assert out.getvalue().splitlines() == ["ID\t\tNAME\t\t\tSIZE",
                                           "sha256:1\tevil:v1\\nx\\x1b[31mred\t2 KiB"]


def test_table_is_padded_with_tabs_to_eight_column_stops_as_rkts_tabwriter() -> None:
    """rkt prints tables through Go's tabwriter (minwidth 0, tabwidth 8, padding 1, '\\t'): a
    cell of 8 characters needs a second tab, an empty cell gets one, the last cell none."""
    out = io.StringIO()
    table([["12345678", "web", "busybox:latest", "running", ""],
           ["", "worker", "busybox:latest", "", ""]],
          header=["UUID", "APP", "IMAGE NAME", "STATE", "NETWORKS"], out=out)
    assert out.getvalue() == (
        "UUID\t\tAPP\tIMAGE NAME\tSTATE\tNETWORKS\n"
        "12345678\tweb\tbusybox:latest\trunning\t\n"
        "\t\tworker\tbusybox:latest\t\t\n")
    assert [line.split("\t")[0] for line in out.getvalue().splitlines()] == ["UUID", "12345678", ""]  # cut -f1


def test_table_without_rows_prints_the_legend_alone() -> None:
    out = io.StringIO()
    table([], header=["ID", "NAME"], out=out)
    assert out.getvalue() == "ID\tNAME\n"


@pytest.mark.parametrize("text, quoted", [
    ("freebsd", '"freebsd"'),
    ('say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
    ("v1\n\x1b[31m", '"v1\\n\\x1b[31m"'),
    ("\a\b\f\v\u202e", '"\\a\\b\\f\\v\\u202e"'),
    ("café", '"café"'),
])
def test_quote_writes_what_gos_percent_q_writes(text: str, quoted: str) -> None:
    assert quote(text) == quoted


def test_an_error_quoting_a_name_from_outside_is_one_escaped_line(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> int:
        raise NotFound("image evil:v1\nx\x1b[31m not found")

    monkeypatch.setattr("pyrkt.cli.main.dispatch", boom)
    assert main(["image", "list"]) == 254
    assert capsys.readouterr().err == "pyrkt: image evil:v1\\nx\\x1b[31m not found\n"
