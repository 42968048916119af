from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from chatd.wire.line import action, chat, encode_line, notice
from chatd.wire.text import decode_line, one_line, sanitize


def test_wire_formats() -> None:
    assert chat("alice", "hi there") == "<alice> hi there"
    assert action("alice", "waves") == "* alice waves"
    assert notice("bob joined") == "*** bob joined"
    assert encode_line("héllo") == "héllo\n".encode()


def test_invalid_utf8_is_replaced_not_an_error() -> None:
    assert decode_line(b"caf\xc3\xa9 \xff\xfe ok") == "café \ufffd\ufffd ok"


def test_escape_sequences_are_removed_whole() -> None:
    assert sanitize("a\x1b[2Jb") == "ab"  # clear screen
    assert sanitize("a\x1b[38;5;196mred\x1b[0m") == "ared"
    assert sanitize("x\x1b]0;pwned title\x07y") == "xy"  # OSC window title, BEL
    assert sanitize("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y") == "xlinky"  # OSC 8, ST
    assert sanitize("x\x1bPdevice control\x1b\\y") == "xy"
    assert sanitize("x\x9b31my") == "xy"  # 8-bit CSI
    assert sanitize("x\x1bcy") == "xy"  # RIS: full reset
    assert sanitize("x\x1b") == "x"


def test_controls_are_removed_and_tabs_become_spaces() -> None:
    assert sanitize("a\x00b\x07c\x08d\x7fe\x85f\rg") == "abcdefg"
    assert sanitize("col1\tcol2") == "col1 col2"


def test_bidi_overrides_and_isolates_are_removed_and_plain_marks_kept() -> None:
    # One user's U+202E would show the words after it reversed (a quit reason
    # flipping the page's own "(Quit: ...)" around it, a topic its room's line).
    assert sanitize("safe \u202eflipped\u202c end") == "safe flipped end"
    assert sanitize("\u2066isolated\u2069 \u202aembedded") == "isolated embedded"
    assert sanitize("שלום\u200f world \u200e") == "שלום\u200f world \u200e"


def test_ordinary_text_passes_untouched() -> None:
    for text in ["hello", "Grüße, 世界! 👋", "a  b", "<bob> quoted", "100% [ok] ~/x"]:
        assert sanitize(text) == text


def test_decode_line_strips_trailing_space() -> None:
    assert decode_line(b"  indented  \t ") == "  indented"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_nothing_that_leaves_the_sanitizer_is_a_control_character(text: str) -> None:
    clean = sanitize(text)
    assert "\x1b" not in clean
    assert not any(unicodedata.category(ch) == "Cc" for ch in clean)


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_safe_text(raw: bytes) -> None:
    clean = decode_line(raw)
    assert not any(unicodedata.category(ch) == "Cc" for ch in clean)
    assert clean == clean.rstrip()


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"]), max_size=100))
def test_printable_text_is_kept_exactly(text: str) -> None:
    assert sanitize(text) == text


def test_lone_surrogates_are_removed() -> None:
    # Only a plugin's or an operator's text can hold one (decode_line never
    # makes one); no UTF-8 encoder can write it, the wire's or SQLite's.
    assert one_line("bad \udcff topic") == "bad  topic"
    assert sanitize("x\ud800y") == "xy"
