"""The browser page as shipped (chatd/web/chat.html), read without a browser.

The server lets the page run only its one inline script and its one inline
style, by their sha256 hashes (Content-Security-Policy), and the page must
insert every text from the chat as text, never as HTML. These checks hold the
file to both, so a change that would break the page under that policy, or
open it to markup from the chat, fails here in milliseconds rather than in
Chromium (tests/test_web_browser.py drives the page itself).
"""

from __future__ import annotations

import importlib.resources
import re
from html.parser import HTMLParser

import pytest

PACKAGE = "chatd.web"
FILE = "chat.html"

#: Every event of the web protocol's server -> client table (README, "The web
#: protocol"): the page's handler table names each one.
SERVER_EVENTS = frozenset(
    {"said", "acted", "private", "joined", "parted", "kicked", "quit", "renamed", "topic"}
    | {"opped", "notice", "hello", "you_renamed", "goodbye", "closing", "welcome", "room"}
    | {"members", "current", "left", "history_start", "history", "history_end", "rooms"}
    | {"pong", "error"}
)

#: What would turn text into markup or code: the page never uses these.
FORBIDDEN = {
    "innerHTML": r"\binnerHTML\b",
    "outerHTML": r"\bouterHTML\b",
    "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
    "document.write": r"\bdocument\s*\.\s*write(ln)?\b",
    "eval": r"\beval\s*\(",
    "new Function": r"\bnew\s+Function\b",
    "Function(...)": r"(?<![\w.])Function\s*\(",
    "setTimeout with a string": r"\bset(Timeout|Interval)\s*\(\s*[\"'`]",
    "createContextualFragment": r"\bcreateContextualFragment\b",
    "DOMParser": r"\bDOMParser\b",
    "srcdoc": r"\bsrcdoc\b",
    "javascript: URL": r"javascript:",
    "import()": r"\bimport\s*\(",
}

#: Attributes that fetch or navigate somewhere: the only allowed value is a data: URL.
URL_ATTRIBUTES = frozenset({"src", "href", "action", "formaction", "srcset", "poster", "data"})
#: Elements that load something: the page has none.
LOADING_TAGS = frozenset({"img", "iframe", "object", "embed", "base", "audio", "video"})
#: Ways out to other servers, or to storage that would outlive the tab (the
#: password is kept in memory only).
ELSEWHERE = ("fetch(", "XMLHttpRequest", "EventSource", "sendBeacon", "localStorage")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of script and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag in self.raw:
            self._in = tag
            self.raw[tag].append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.raw[self._in][-1] += data


@pytest.fixture(scope="module")
def html() -> str:
    return importlib.resources.files(PACKAGE).joinpath(FILE).read_text("utf-8")


@pytest.fixture(scope="module")
def parsed(html: str) -> _Tags:
    tags = _Tags()
    tags.feed(html)
    tags.close()
    return tags


@pytest.fixture(scope="module")
def script(parsed: _Tags) -> str:
    return parsed.raw["script"][0]


def test_the_page_is_found_as_package_data(html: str) -> None:
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in html
    assert 'name="viewport"' in html


def test_one_script_and_one_style_each_a_bare_tag(html: str, parsed: _Tags) -> None:
    """The policy hashes exactly the text between a bare opening tag and its
    close: an attribute (type, nonce, src), a second element, or the tag's
    name written out in a comment would leave a script or style unhashed."""
    for tag in ("script", "style"):
        assert len(parsed.raw[tag]) == 1, f"{tag}: exactly one element"
        attributes = [attrs for name, attrs in parsed.tags if name == tag]
        assert attributes == [[]], f"<{tag}> has attributes"
        assert html.count(f"<{tag}") == 1, f"'<{tag}' appears more than once (a comment?)"
        assert html.count(f"</{tag}>") == 1
        between = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        assert between is not None and between.group(1) == parsed.raw[tag][0]


def test_no_inline_handlers_or_style_attributes(parsed: _Tags) -> None:
    """The policy blocks both (no 'unsafe-inline'): they would silently not work."""
    found = [
        f"<{tag} {name}=>"
        for tag, attrs in parsed.tags
        for name, _ in attrs
        if name.startswith("on") or name == "style"
    ]
    assert found == []


def test_nothing_is_fetched_from_elsewhere(html: str, parsed: _Tags) -> None:
    """No CDN, no font, no image: default-src 'none' would refuse it anyway."""
    assert re.findall(r"https?://", html, re.IGNORECASE) == []
    urls = [
        (tag, name, value)
        for tag, attrs in parsed.tags
        for name, value in attrs
        if name in URL_ATTRIBUTES and not (value or "").startswith("data:")
    ]
    assert urls == []
    icon = ("link", [("rel", "icon"), ("href", "data:,")])
    assert icon in parsed.tags  # else the browser asks for /favicon.ico, a 404
    assert not LOADING_TAGS & {tag for tag, _ in parsed.tags}


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_text_never_becomes_markup_or_code(html: str, what: str) -> None:
    assert re.findall(FORBIDDEN[what], html) == [], f"the page uses {what}"


def test_the_script_reaches_only_its_own_server(script: str) -> None:
    for api in ELSEWHERE:
        assert api not in script, api
    sockets = re.findall(r"new WebSocket\(([^;]*)\)", script)
    assert len(sockets) == 1
    assert "location.host" in sockets[0] and '"/ws"' in sockets[0]


def test_every_server_event_has_a_handler(script: str) -> None:
    table = re.search(r"const ON = \{(.*?)\n  \};", script, re.DOTALL)
    assert table is not None, "the event handler table (const ON = {...})"
    handlers = set(re.findall(r"^    (\w+)\(", table.group(1), re.MULTILINE))
    assert sorted(SERVER_EVENTS - handlers) == []
    assert sorted(handlers - SERVER_EVENTS) == []


def test_the_states_the_browser_tests_poll(html: str, script: str) -> None:
    assert '<div id="app" data-state="connecting">' in html
    for state in ("connecting", "naming", "chatting", "reconnecting", "waiting", "closed"):
        assert f'setState("{state}")' in script, state


def test_bounds_are_named(script: str) -> None:
    assert re.search(r"const MAX_LINES = 1000;", script)
    assert re.search(r"const BACKOFF_MAX_S = \d+;", script)
