"""A Perspective comment as the model reads it: the text of an HTML comment without its markup, its
sentences, and each sentence's place in the comment as the client sent it, counted in UTF-16 code units as
Perspective's `spanScores` are ("begin" and "end" are the UTF-16 code unit range, end exclusive)."""

from __future__ import annotations

import html
from functools import cache
from html.parser import HTMLParser
from itertools import accumulate
from typing import NamedTuple

import numpy as np

# tags that end a line of text in a browser, so that the words on either side are not run together
BREAKING_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "table", "td", "th", "tr", "ul",
}  # fmt: skip
UNREAD_TAGS = {"script", "style", "template"}  # their content is not text a reader sees


class CommentText(NamedTuple):
    """`text`: what the model scores; `starts[i]`, `ends[i]`: where its character i came from in `source`
    (a character of an entity such as &amp; spans the whole entity; a line break put in for a tag is
    empty)."""

    source: str
    text: str
    starts: list[int] | None = None  # None: `text` is `source`
    ends: list[int] | None = None

    def source_range(self, begin: int, end: int) -> tuple[int, int]:
        """Where text[begin:end] (not empty) lies in `source`, in code points."""
        if self.starts is None:
            return begin, end
        return self.starts[begin], self.ends[end - 1]


def read_comment(source: str, html_type: bool) -> CommentText:
    if not html_type:
        return CommentText(source, source)
    reader = _TextOfHtml(source)
    reader.feed(source)
    reader.close()
    return CommentText(source, "".join(reader.chars), reader.starts, reader.ends)


class _TextOfHtml(HTMLParser):
    """Collects the text of an HTML fragment, each character with its range in the fragment."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)  # entities one by one, so each keeps its place
        self.source = source
        self.line_starts = [0, *(at + 1 for at, char in enumerate(source) if char == "\n")]
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.unread = 0  # inside <script>, <style>...

    def position(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def add(self, text: str, start: int, end: int | None = None) -> None:
        for offset, char in enumerate(text):
            self.chars.append(char)
            self.starts.append(start if end is not None else start + offset)
            self.ends.append(end if end is not None else start + offset + 1)

    def handle_starttag(self, tag, attrs):
        if tag in UNREAD_TAGS:
            self.unread += 1
        elif tag in BREAKING_TAGS:
            self.add("\n", self.position(), self.position())

    def handle_startendtag(self, tag, attrs):
        if tag in BREAKING_TAGS:
            self.add("\n", self.position(), self.position())

    def handle_endtag(self, tag):
        if tag in UNREAD_TAGS:
            self.unread = max(0, self.unread - 1)
        elif tag in BREAKING_TAGS:
            self.add("\n", self.position(), self.position())

    def handle_data(self, data):
        if not self.unread:
            self.add(data, self.position())

    def handle_entityref(self, name):
        self._reference(name)

    def handle_charref(self, name):
        self._reference("#" + name)

    def _reference(self, name: str) -> None:
        if self.unread:
            return
        start = self.position()
        end = start + 1 + len(name)
        end += self.source.startswith(";", end)
        self.add(html.unescape(self.source[start:end]), start, end)


# ------------------------------------------------------------------------------------------ sentences
class Span(NamedTuple):
    begin: int  # in the comment's text, code points
    end: int


@cache
def _segmenter():
    import pysbd  # rule-based, offline; loaded on the first comment that asks for spans

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


SEGMENTED_CHARS = 1000  # pysbd's time grows with its input's square: it reads pieces this long at most
SENTENCE_ENDS = ".!?;:\n\u3002\uff01\uff1f"  # a sentence ends at one of these, or at the text's end


def most_sentences(text: str) -> int:
    """An upper bound on the sentences pysbd finds in `text`, counted in linear time."""
    return 1 + sum(text.count(char) for char in SENTENCE_ENDS) + len(text) // SEGMENTED_CHARS


def sentence_spans(text: str, most: int) -> list[Span]:
    """The sentences of `text`, without the white space around them; at most `most`: beyond that,
    neighbouring sentences share a span (as evenly as they can). A long text is segmented in pieces of
    at most SEGMENTED_CHARS, cut at white space, so a sentence longer than that is cut in two: the time
    is then linear in the length (pysbd alone took 7 s on 20,000 characters of "1. 1. 1. ...")."""
    spans = []
    for start, piece in _pieces(text, SEGMENTED_CHARS):
        for sentence in _segmenter().segment(piece):
            begin = start + sentence.start + len(sentence.sent) - len(sentence.sent.lstrip())
            end = start + sentence.start + len(sentence.sent.rstrip())
            if end > begin:
                spans.append(Span(begin, end))
    if len(spans) > most:
        groups = np.array_split(np.arange(len(spans)), most)
        spans = [Span(spans[group[0]].begin, spans[group[-1]].end) for group in groups]
    return spans


def _pieces(text: str, size: int):
    """(offset, piece) covering `text`, each piece at most `size` characters, cut after white space where
    there is some in its second half."""
    start = 0
    while len(text) - start > size:
        window = (start + size // 2, start + size)
        cut = max(text.rfind(" ", *window), text.rfind("\n", *window))
        end = cut + 1 if cut > 0 else start + size
        yield start, text[start:end]
        start = end
    yield start, text[start:]


def utf16_offsets(text: str):
    """A function from a code point offset in `text` to its UTF-16 code unit offset."""
    if all(char <= "\uffff" for char in text):
        return lambda offset: offset
    before = [0, *accumulate(char > "\uffff" for char in text)]  # surrogate pairs before each offset
    return lambda offset: offset + before[offset]


def utf16_length(text: str) -> int:
    return utf16_offsets(text)(len(text))
