"""Path template grammar (docs/decisions.md T6-T7) and capture decoding (T10-T11)."""

from __future__ import annotations

import pytest

from taskgate.gateway.path_template import (
    PathDecodeError,
    SegmentKind,
    TemplateSyntaxError,
    decode_path_value,
    parse_path_template,
)

L, S, D = SegmentKind.LITERAL, SegmentKind.STAR, SegmentKind.DOUBLE_STAR


@pytest.mark.parametrize(
    ("text", "segments", "verb", "variables"),
    [
        ("/", [], None, []),
        ("/v1/books", [(L, "v1"), (L, "books")], None, []),
        ("/v1/{name}", [(L, "v1"), (S, "")], None, [("name", 1, 2, False)]),
        ("/v1/{name=*}", [(L, "v1"), (S, "")], None, [("name", 1, 2, False)]),
        ("/v1/{path=**}", [(L, "v1"), (D, "")], None, [("path", 1, 2, True)]),
        ("/v1/{a.b.c}", [(L, "v1"), (S, "")], None, [("a.b.c", 1, 2, False)]),
        (
            "/v1/{name=shelves/*/books/*}",
            [(L, "v1"), (L, "shelves"), (S, ""), (L, "books"), (S, "")],
            None,
            [("name", 1, 5, True)],
        ),
        ("/v1/{x=abc}", [(L, "v1"), (L, "abc")], None, [("x", 1, 2, False)]),
        ("/v1/*/**", [(L, "v1"), (S, ""), (D, "")], None, []),
        ("/v1/books:search", [(L, "v1"), (L, "books")], "search", []),
        ("/v1/{name=**}:download", [(L, "v1"), (D, "")], "download", [("name", 1, 2, True)]),
        (
            "/v1/{a}/x/{b=y/*}:do",
            [(L, "v1"), (S, ""), (L, "x"), (L, "y"), (S, "")],
            "do",
            [("a", 1, 2, False), ("b", 3, 5, True)],
        ),
        ("/v1/a%20b", [(L, "v1"), (L, "a%20b")], None, []),
    ],
)
def test_parse_path_template_accepts_the_grammar(
    text: str,
    segments: list[tuple[SegmentKind, str]],
    verb: str | None,
    variables: list[tuple[str, int, int, bool]],
) -> None:
    template = parse_path_template(text)
    assert [(s.kind, s.literal) for s in template.segments] == segments
    assert template.verb == verb
    assert [(v.name, v.start, v.end, v.multi_segment) for v in template.variables] == variables


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid path template '': must start with '/'"),
        ("v1/books", "invalid path template 'v1/books': must start with '/'"),
        ("/v1//a", "invalid path template '/v1//a': expected a segment at position 4, got '/'"),
        (
            "/v1/",
            "invalid path template '/v1/': expected a segment at position 4, got end of template",
        ),
        ("/v1/{name", "invalid path template '/v1/{name': unclosed '{' at position 4"),
        ("/v1/{}", "invalid path template '/v1/{}': expected a field path at position 5, got '}'"),
        ("/v1/{a.}", "invalid path template '/v1/{a.}': invalid field path 'a.' at position 5"),
        ("/v1/{1a}", "invalid path template '/v1/{1a}': invalid field path '1a' at position 5"),
        ("/v1/{a={b}}", "invalid path template '/v1/{a={b}}': nested variable at position 7"),
        ("/v1/{a}/{a}", "invalid path template '/v1/{a}/{a}': variable 'a' appears twice"),
        ("/v1/**/a", "invalid path template '/v1/**/a': '**' must be the last segment (segment 2)"),
        (
            "/v1/{a=**}/b",
            "invalid path template '/v1/{a=**}/b': '**' must be the last segment (segment 2)",
        ),
        (
            "/v1/a:",
            "invalid path template '/v1/a:': expected a verb at position 6, got end of template",
        ),
        ("/v1/a:b/c", "invalid path template '/v1/a:b/c': unexpected '/' at position 7"),
        ("/v1/a}", "invalid path template '/v1/a}': unexpected '}' at position 5"),
        ("/v1/a b", "invalid path template '/v1/a b': unexpected ' ' at position 5"),
        ("/v1/a?x", "invalid path template '/v1/a?x': unexpected '?' at position 5"),
        ("/v1/{a=}", "invalid path template '/v1/{a=}': expected a segment at position 7, got '}'"),
    ],
)
def test_parse_path_template_rejects_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_path_template(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("raw", "multi", "decoded"),
    [
        ("plain", False, "plain"),
        ("a%20b", False, "a b"),
        ("a%2Fb", False, "a/b"),
        ("a%2fb", False, "a/b"),
        ("a%2Fb", True, "a%2Fb"),
        ("a%2fb/c%20d", True, "a%2fb/c d"),
        ("%E2%82%AC", False, "\u20ac"),
        ("a+b", False, "a+b"),
        ("a%3Ab", False, "a:b"),
    ],
)
def test_decode_path_value(raw: str, multi: bool, decoded: str) -> None:
    assert decode_path_value(raw, multi_segment=multi) == decoded


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("%zz", "malformed percent-encoding"),
        ("abc%4", "malformed percent-encoding"),
        ("abc%", "malformed percent-encoding"),
        ("%ff", "not valid UTF-8"),
        ("%C3", "not valid UTF-8"),
    ],
)
def test_decode_path_value_rejects_bad_escapes(raw: str, message: str) -> None:
    with pytest.raises(PathDecodeError, match=f"^{message}$"):
        decode_path_value(raw, multi_segment=False)
