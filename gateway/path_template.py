"""Parse `google.api.http` path templates, and percent-decode the values they capture. Pure.

Grammar (http.proto; docs/decisions.md T6):

    Template = "/" [ Segments ] [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`"/v1/{name=shelves/*}:cancel"` gives segments `[v1, shelves, *]`, the variable `name` over
segments 1..3, and the verb `"cancel"`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# RFC 3986 pchar minus "/" and ":" is literal text; a ":" ends the last segment (the verb).
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@]|%[0-9A-Fa-f]{2})+")
_FIELD_PATH = re.compile(rf"{_IDENT.pattern}(?:\.{_IDENT.pattern})*")
_RAW_FIELD_PATH = re.compile(r"[^=}{/]+")
_VERB = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@:]|%[0-9A-Fa-f]{2})+")


class TemplateSyntaxError(ValueError):
    """A path template that does not follow the grammar (a start-up error)."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"invalid path template {template!r}: {reason}")
        self.template = template
        self.reason = reason


class SegmentKind(enum.Enum):
    LITERAL = "literal"
    #: `*`: exactly one segment.
    STAR = "*"
    #: `**`: zero or more segments; only last.
    DOUBLE_STAR = "**"


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    """A `{field.path=...}` capture over `segments[start:end]`."""

    field_path: tuple[str, ...]
    start: int
    end: int
    #: True for `{v=**}`, `{v=a/*}` and the like: decoded except `%2F` (T10).
    multi_segment: bool

    @property
    def name(self) -> str:
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str | None


def parse_path_template(text: str) -> PathTemplate:
    """Parse `text`, or raise `TemplateSyntaxError` naming what is wrong."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []

    def fail(self, reason: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(self.text, reason)

    def parse(self) -> PathTemplate:
        if not self.text.startswith("/"):
            raise self.fail("must start with '/'")
        self.pos = 1
        verb = None
        if self.pos < len(self.text):
            self.parse_segments(in_variable=False)
            verb = self.parse_verb()
        self.check_double_star()
        return PathTemplate(self.text, tuple(self.segments), tuple(self.variables), verb)

    def parse_segments(self, *, in_variable: bool) -> None:
        while True:
            self.parse_segment(in_variable=in_variable)
            if self.peek() != "/":
                return
            self.pos += 1

    def parse_segment(self, *, in_variable: bool) -> None:
        char = self.peek()
        if char == "{":
            if in_variable:
                raise self.fail(f"nested variable at position {self.pos}")
            self.parse_variable()
        elif self.text.startswith("**", self.pos):
            self.pos += 2
            self.segments.append(Segment(SegmentKind.DOUBLE_STAR))
        elif char == "*":
            self.pos += 1
            self.segments.append(Segment(SegmentKind.STAR))
        else:
            self.segments.append(Segment(SegmentKind.LITERAL, self.take(_LITERAL, "segment")))

    def parse_variable(self) -> None:
        opened = self.pos
        self.pos += 1
        raw_path = self.take(_RAW_FIELD_PATH, "field path")
        if not _FIELD_PATH.fullmatch(raw_path):
            raise self.fail(f"invalid field path {raw_path!r} at position {opened + 1}")
        path = raw_path.split(".")
        if tuple(path) in {v.field_path for v in self.variables}:
            raise self.fail(f"variable {'.'.join(path)!r} appears twice")
        start = len(self.segments)
        if self.peek() == "=":
            self.pos += 1
            self.parse_segments(in_variable=True)
        else:
            self.segments.append(Segment(SegmentKind.STAR))
        if self.peek() != "}":
            raise self.fail(f"unclosed '{{' at position {opened}")
        self.pos += 1
        end = len(self.segments)
        multi = end - start > 1 or self.segments[start].kind is SegmentKind.DOUBLE_STAR
        self.variables.append(Variable(tuple(path), start, end, multi))

    def parse_verb(self) -> str | None:
        if self.pos == len(self.text):
            return None
        if self.peek() != ":":
            raise self.fail(f"unexpected {self.peek()!r} at position {self.pos}")
        self.pos += 1
        verb = self.take(_VERB, "verb")
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r} at position {self.pos}")
        return verb

    def check_double_star(self) -> None:
        for index, segment in enumerate(self.segments[:-1]):
            if segment.kind is SegmentKind.DOUBLE_STAR:
                raise self.fail(f"'**' must be the last segment (segment {index + 1})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            got = repr(self.peek()) if self.peek() else "end of template"
            raise self.fail(f"expected a {what} at position {self.pos}, got {got}")
        self.pos = found.end()
        return found.group()


class PathDecodeError(ValueError):
    """A captured path value with a malformed `%` escape or invalid UTF-8."""


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")


def decode_path_value(raw: str, *, multi_segment: bool) -> str:
    """Percent-decode a captured value (T10): fully, or all but `%2F` for multi-segment ones.

    `decode_path_value("a%2Fb%20c", multi_segment=True)` gives `"a%2Fb c"`.
    """
    if "%" not in raw:
        return raw
    out = bytearray()
    last = 0
    for escape in _ESCAPE.finditer(raw):
        hex_digits = escape.group(1)
        if hex_digits is None:
            raise PathDecodeError("malformed percent-encoding")
        out += raw[last : escape.start()].encode()
        if multi_segment and hex_digits in ("2F", "2f"):
            out += escape.group().encode()
        else:
            out.append(int(hex_digits, 16))
        last = escape.end()
    out += raw[last:].encode()
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise PathDecodeError("not valid UTF-8") from None
