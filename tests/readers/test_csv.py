"""CSV items follow AWS's documented rules and the AWS-recorded edge cases (reference §1.4)."""

from __future__ import annotations

import pytest

from dmap.errors import StatesError

from .conftest import Objects

# The bodies of the LocalStack tests validated against AWS on 2023-09-21.
ROWS = "Value1,Value2,Value3\nValue4,Value5,Value6\n,,,\ntrue,1,'HelloWorld'\nNull,None,\n   \n"


def test_first_row_headers_give_string_values_exactly_as_aws_recorded(objects: Objects) -> None:
    objects.put("file.csv", "Col1,Col2,Col3\n" + ROWS)
    assert objects.values(key="file.csv", input_type="CSV") == [
        {"Col1": "Value1", "Col2": "Value2", "Col3": "Value3"},
        {"Col1": "Value4", "Col2": "Value5", "Col3": "Value6"},
        {"Col1": "", "Col2": "", "Col3": ""},
        {"Col1": "true", "Col2": "1", "Col3": "'HelloWorld'"},
        {"Col1": "Null", "Col2": "None", "Col3": ""},
        {"Col1": "   ", "Col2": "", "Col3": ""},
    ]


def test_given_headers_read_every_row_including_whitespace_only_ones(local_objects: Objects) -> None:
    local_objects.put("file.csv", ROWS)
    values = local_objects.values(
        key="file.csv", input_type="CSV", csv_header_location="GIVEN", csv_headers=("H1", "H2", "H3")
    )
    assert values == [
        {"H1": "Value1", "H2": "Value2", "H3": "Value3"},
        {"H1": "Value4", "H2": "Value5", "H3": "Value6"},
        {"H1": "", "H2": "", "H3": ""},
        {"H1": "true", "H2": "1", "H3": "'HelloWorld'"},
        {"H1": "Null", "H2": "None", "H3": ""},
        {"H1": "   ", "H2": "", "H3": ""},
    ]


def test_duplicate_given_headers_fail_with_the_aws_cause(local_objects: Objects) -> None:
    local_objects.put("file.csv", ROWS)
    stream = local_objects.open(
        key="file.csv", input_type="CSV", csv_header_location="GIVEN", csv_headers=("H1", "H1", "H3")
    )
    with pytest.raises(StatesError) as info:
        next(stream)
    assert (info.value.name, info.value.cause) == ("States.ItemReaderFailed", "CSV headers cannot contain duplicates.")


def test_duplicate_first_row_headers_fail_too(local_objects: Objects) -> None:
    local_objects.put("file.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(StatesError, match="CSV headers cannot contain duplicates."):
        local_objects.values(key="file.csv", input_type="CSV")


def test_typed_looking_first_row_headers_are_literal_strings(local_objects: Objects) -> None:
    local_objects.put("file.csv", "0,True,{}\n" + ROWS.split("\n", 1)[1])
    assert local_objects.values(key="file.csv", input_type="CSV")[0] == {
        "0": "Value4",
        "True": "Value5",
        "{}": "Value6",
    }


def test_fewer_given_headers_drop_the_extra_fields(local_objects: Objects) -> None:
    local_objects.put("file.csv", ROWS)
    values = local_objects.values(key="file.csv", input_type="CSV", csv_header_location="GIVEN", csv_headers=("H1",))
    assert values == [{"H1": "Value1"}, {"H1": "Value4"}, {"H1": ""}, {"H1": "true"}, {"H1": "Null"}, {"H1": "   "}]


def test_a_trailing_empty_header_becomes_the_empty_key_and_extra_fields_are_dropped(local_objects: Objects) -> None:
    local_objects.put("file.csv", "H1,\n" + ROWS.split("\n", 1)[1])
    assert local_objects.values(key="file.csv", input_type="CSV") == [
        {"H1": "Value4", "": "Value5"},
        {"H1": "", "": ""},
        {"H1": "true", "": "1"},
        {"H1": "Null", "": "None"},
        {"H1": "   ", "": ""},
    ]


def test_the_documented_example_keeps_quoted_commas_quotes_and_newlines(local_objects: Objects) -> None:
    line = 'abc,123,"This string contains commas, a double quotation marks (""), and a newline (\n)",'
    local_objects.put("in.csv", line + '{""MyKey"":""MyValue""},"[1,2,3]"\n')
    headers = ("MyLetters", "MyNumbers", "MyString", "MyObject", "MyArray")
    values = local_objects.values(key="in.csv", input_type="CSV", csv_header_location="GIVEN", csv_headers=headers)
    assert values == [
        {
            "MyLetters": "abc",
            "MyNumbers": "123",
            "MyString": 'This string contains commas, a double quotation marks ("), and a newline (\n)',
            "MyObject": '{"MyKey":"MyValue"}',
            "MyArray": "[1,2,3]",
        }
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("C:\\\\Program Files\\\\MyApp.exe,6534512", ["C:\\Program Files\\MyApp.exe", "6534512"]),
        ("a\\,b,c", ["a,b", "c"]),
        ("\\x\\y,z", ["xy", "z"]),
        ('\\"quoted\\",2', ['"quoted"', "2"]),
        ('"in \\"quotes\\"",2', ['in "quotes"', "2"]),
        ('"a""b",""', ['a"b', ""]),
        ('x"y,2', ['x"y', "2"]),
        (' "lead",2', [' "lead"', "2"]),
    ],
)
def test_backslashes_and_quotes_follow_the_documented_escapes(
    local_objects: Objects, line: str, expected: list[str]
) -> None:
    local_objects.put("e.csv", "A,B\n" + line + "\n")
    assert local_objects.values(key="e.csv", input_type="CSV") == [dict(zip(("A", "B"), expected, strict=True))]


@pytest.mark.parametrize(
    ("name", "sep"), [("PIPE", "|"), ("SEMICOLON", ";"), ("SPACE", " "), ("TAB", "\t"), ("COMMA", ",")]
)
def test_every_delimiter_separates_fields(objects: Objects, name: str, sep: str) -> None:
    objects.put("d.csv", sep.join(["a", "b"]) + "\n" + sep.join(["1", '"x' + sep + 'y"']) + "\n")
    assert objects.values(key="d.csv", input_type="CSV", csv_delimiter=name) == [{"a": "1", "b": "x" + sep + "y"}]


def test_crlf_line_endings_and_a_missing_final_newline_are_handled(local_objects: Objects) -> None:
    local_objects.put("w.csv", 'a,b\r\n1,2\r\n"multi\r\nline",3\r\n4,5')
    assert local_objects.values(key="w.csv", input_type="CSV") == [
        {"a": "1", "b": "2"},
        {"a": "multi\r\nline", "b": "3"},
        {"a": "4", "b": "5"},
    ]


def test_a_blank_line_is_a_row_of_empty_values(local_objects: Objects) -> None:
    local_objects.put("b.csv", "a,b\n1,2\n\n3,4\n")
    assert local_objects.values(key="b.csv", input_type="CSV") == [
        {"a": "1", "b": "2"},
        {"a": "", "b": ""},
        {"a": "3", "b": "4"},
    ]


def test_a_byte_order_mark_is_not_part_of_the_first_header(local_objects: Objects) -> None:
    local_objects.put("bom.csv", b"\xef\xbb\xbfid,name\n1,x\n")
    assert local_objects.values(key="bom.csv", input_type="CSV") == [{"id": "1", "name": "x"}]


def test_an_empty_object_with_first_row_headers_has_no_items(local_objects: Objects) -> None:
    local_objects.put("empty.csv", b"")
    assert local_objects.values(key="empty.csv", input_type="CSV") == []


def test_invalid_utf8_fails_naming_the_object_and_line(objects: Objects) -> None:
    objects.put("bad.csv", b"a,b\n1,2\n3,\xff\xfe\n")
    stream = objects.open(key="bad.csv", input_type="CSV")
    assert next(stream).value == {"a": "1", "b": "2"}
    with pytest.raises(StatesError) as info:
        next(stream)
    assert info.value.name == "States.ItemReaderFailed"
    assert f"S3://{objects.bucket}/bad.csv" in info.value.cause
    assert "line 3" in info.value.cause


def test_an_unclosed_quote_fails_naming_the_line_it_opened_on(local_objects: Objects) -> None:
    local_objects.put("q.csv", 'a,b\n1,2\n"open,3\n4,5\n')
    with pytest.raises(StatesError) as info:
        local_objects.values(key="q.csv", input_type="CSV")
    assert "line 3" in info.value.cause and "never closed" in info.value.cause


def test_a_header_row_over_10_kib_fails(local_objects: Objects) -> None:
    local_objects.put("wide.csv", ",".join(f"column_{i:05d}" for i in range(1000)) + "\n1\n")
    with pytest.raises(StatesError, match="larger than 10 KiB"):
        local_objects.values(key="wide.csv", input_type="CSV")


def test_given_without_headers_and_an_unknown_delimiter_fail_clearly(local_objects: Objects) -> None:
    local_objects.put("x.csv", "a\n")
    with pytest.raises(StatesError, match="GIVEN needs CSVHeaders"):
        local_objects.values(key="x.csv", input_type="CSV", csv_header_location="GIVEN")
    with pytest.raises(StatesError, match="Unknown CSVDelimiter 'COLON'"):
        local_objects.values(key="x.csv", input_type="CSV", csv_delimiter="COLON")
