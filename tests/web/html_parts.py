"""Read what the dashboard's pages say with the standard library's HTML parser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def content(self) -> str:
        return "".join(self.text)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].tag == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text.append(data)


def parse(html: str) -> list[Element]:
    """Every element of the page, in document order, with its attributes and text."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.elements


def select(html: str, tag: str, *, cls: str | None = None, **attrs: str) -> list[Element]:
    """The elements of ``tag`` (with class ``cls`` and these attribute values, if given)."""
    found = []
    for element in parse(html):
        if element.tag != tag or (cls is not None and cls not in element.classes):
            continue
        if all(element.attrs.get(name.replace("_", "-")) == value for name, value in attrs.items()):
            found.append(element)
    return found


def one(html: str, tag: str, **kwargs: Any) -> Element:
    found = select(html, tag, **kwargs)
    assert len(found) == 1, f"{len(found)} <{tag} {kwargs}> on the page"
    return found[0]


def chart_data(html: str) -> dict[str, Any]:
    """The KR page's ``script#chart-data``, decoded."""
    script = one(html, "script", id="chart-data")
    assert script.attrs.get("type") == "application/json"
    data: dict[str, Any] = json.loads(script.content)
    return data


def flashes(html: str, kind: str) -> list[str]:
    """The texts of the page's ``.flash.<kind>`` messages."""
    return [e.content.strip() for e in parse(html) if {"flash", kind} <= e.classes]


def kr_rows(html: str) -> dict[str, dict[str, str]]:
    """The overview's ``tr.kr`` rows by ``data-kr``: their attributes."""
    return {e.attrs["data-kr"]: e.attrs for e in select(html, "tr", cls="kr")}
