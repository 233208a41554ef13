"""What the report tests check in a page: its tags and text, and that nothing in it is live."""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["ALLOWED_TAGS", "ParsedPage", "parse_html", "assert_inert"]

ALLOWED_TAGS = frozenset({
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "div",
    "table", "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "dl", "dt",
    "dd", "del", "ins", "details", "summary", "strong"})
"""Every tag a report page may contain: no script, link, form or frame."""


class ParsedPage(HTMLParser):
    """The start tags (with attributes) and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse_html(page: str) -> ParsedPage:
    """The page parsed."""
    parsed = ParsedPage()
    parsed.feed(page)
    return parsed


def assert_inert(page: str) -> ParsedPage:
    """Assert the page holds only report tags, no handler, no link, only inline PNG images."""
    parsed = parse_html(page)
    assert {tag for tag, _ in parsed.tags} <= ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "href" not in attrs
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    return parsed
