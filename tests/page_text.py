"""The text a person reads on an HTML page (character references decoded, scripts and styles left out), so a
test compares what the page says, not how its HTML spells it."""

from __future__ import annotations

from html.parser import HTMLParser

BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "div", "table", "tr", "td", "th", "li", "br", "body"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.blocks: list[list[str]] = [[]]  # the body's text, one list per block element
        self._skip = 0
        self._body = False

    def handle_starttag(self, tag: str, attrs) -> None:
        self._skip += tag in ("script", "style")
        self._body |= tag == "body"
        if tag in BLOCKS:
            self.blocks.append([])

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0
        if tag in BLOCKS:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)
            if self._body:
                self.blocks[-1].append(data)


def page_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    parser.close()
    return "".join(parser.parts)


def text_blocks(page: str) -> list[str]:
    """The body's text as a reader meets it: one string per block (heading, paragraph, cell), blanks left out."""
    parser = _Text()
    parser.feed(page)
    parser.close()
    return [text for text in (" ".join("".join(block).split()) for block in parser.blocks) if text]
