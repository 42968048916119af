"""List files (words, facts): the one format, and files that are not files.

A list is read in the server's loop, at startup and on every reload: a FIFO, a
device or a folder named as one must be refused at once, naming the setting,
never waited on. Every test that could block on a FIFO runs under a deadline
(and opens the FIFO's other end to free a reader that did block).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from chatd.config import FactSettings, JumbleSettings
from chatd.core import datafiles
from chatd.core.datafiles import DataFileError, read_list
from chatd.core.plugins import PluginError
from chatd.plugins.fact import as_sentence
from chatd.server import Server
from tests.helpers import WAIT, HubFixture, make_config

T = TypeVar("T")

NOT_REGULAR = "not a regular file; name a plain text file"


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "list.fifo"
    os.mkfifo(path)
    yield path


def bounded(fifo: Path, call: Callable[[], T]) -> T:
    """``call()``, which must return (or raise) within WAIT seconds. A call stuck
    opening or reading ``fifo`` is freed by opening its other end, and fails."""
    outcome: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test's thread below
            error.append(exc)

    thread = threading.Thread(target=run, name="bounded", daemon=True)
    thread.start()
    thread.join(WAIT)
    if thread.is_alive():
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader waits: this succeeds
        os.close(writer)  # and the reader gets end-of-file
        thread.join(WAIT)
        raise AssertionError(f"blocked on the FIFO {fifo} for {WAIT}s")
    if error:
        raise error[0]
    return outcome[0]


# -- read_list -------------------------------------------------------------------


def test_one_entry_a_line_trimmed_without_blanks_or_comments(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"# a comment\n\n  planet  \r\ngarden\n   # indented comment\nfolder")
    assert read_list(path) == ["planet", "garden", "folder"]


def test_missing_and_not_utf8_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    with pytest.raises(DataFileError, match=rf"^{path}: no such file$"):
        read_list(path)
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataFileError, match=rf"^{path}: not UTF-8 \(byte 3\)$"):
        read_list(path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(DataFileError) as caught:
        bounded(fifo, lambda: read_list(fifo))
    assert str(caught.value) == f"{fifo}: is a FIFO (named pipe), {NOT_REGULAR}"


def test_a_fifo_swapped_in_after_the_stat_is_refused_without_blocking(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: the stat sees a regular file, then a FIFO is what gets opened.
    regular = tmp_path / "regular.txt"
    regular.write_text("planet\n")
    real_stat = os.stat
    monkeypatch.setattr(
        datafiles.os, "stat", lambda p, **kw: real_stat(regular if p == fifo else p, **kw)
    )
    with pytest.raises(DataFileError) as caught:
        bounded(fifo, lambda: read_list(fifo))
    assert str(caught.value) == f"{fifo}: is a FIFO (named pipe), {NOT_REGULAR}"


def test_a_folder_a_device_and_a_socket_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=f"^{tmp_path}: is a folder, {NOT_REGULAR}$"):
        read_list(tmp_path)
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)  # endless: reading it never ends
    with pytest.raises(DataFileError, match=f"^/dev/zero: is a character device, {NOT_REGULAR}$"):
        read_list(Path("/dev/zero"))
    path = tmp_path / "list.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(DataFileError, match=f"^{path}: is a socket, {NOT_REGULAR}$"):
            read_list(path)


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("planet\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert read_list(tmp_path / "link.txt") == ["planet"]


def test_a_file_past_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert datafiles.MAX_LIST_BYTES == 16 * 1024 * 1024
    monkeypatch.setattr(datafiles, "MAX_LIST_BYTES", 1024 * 1024)
    path = tmp_path / "list.txt"
    path.write_bytes(b"planet\n" * (1024 * 1024 // 7))  # just under a MiB
    assert len(read_list(path)) == 1024 * 1024 // 7
    with path.open("ab") as fh:
        fh.write(b"garden\n")
    with pytest.raises(DataFileError, match=f"^{path}: larger than 1 MiB; a list is one entry"):
        read_list(path)


# -- the plugins' list files -----------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "key", "settings"),
    [
        ("jumble", "words_file", lambda path: {"jumble": JumbleSettings(words_file=path)}),
        ("fact", "facts_file", lambda path: {"fact": FactSettings(facts_file=path)}),
    ],
)
def test_a_list_file_that_is_a_fifo_stops_startup_naming_the_key(
    fifo: Path, plugin: str, key: str, settings: Callable[[str], dict[str, object]]
) -> None:
    config = make_config(**settings(str(fifo)))
    with pytest.raises(PluginError) as caught:
        bounded(fifo, lambda: Server(config, entry_points=False))
    assert str(caught.value) == (
        f"plugin {plugin}: [{plugin}] {key}: {fifo}: is a FIFO (named pipe), {NOT_REGULAR}"
    )


def test_a_words_file_turned_fifo_keeps_the_old_words_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("planet\n")
    fx = HubFixture(config=make_config(jumble=JumbleSettings(words_file=str(path))))
    path.unlink()
    os.mkfifo(path)
    report = bounded(path, lambda: fx.plugins.reload("words"))
    assert list(report) == [
        f"jumble: reload failed, kept the old data: [jumble] words_file: {path}:"
        f" is a FIFO (named pipe), {NOT_REGULAR}"
    ]
    assert fx.plugins.states["jumble"]["words"] == ["planet"]
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/game")
    assert "(6 letters" in alice.take()[0]


def test_a_facts_file_turned_fifo_keeps_the_old_facts_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "facts.txt"
    path.write_text("Old fact.\n")
    fx = HubFixture(config=make_config(fact=FactSettings(facts_file=str(path))))
    path.unlink()
    os.mkfifo(path)
    report = bounded(path, lambda: fx.plugins.reload("all"))
    assert (
        f"fact: reload failed, kept the old data: [fact] facts_file: {path}:"
        f" is a FIFO (named pipe), {NOT_REGULAR}"
    ) in report
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/fact")
    assert alice.take() == ["*** Fact: Old fact."]


def test_a_fact_is_told_as_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "facts.txt"
    path.write_text("Honey keeps for ages\n")
    fx = HubFixture(config=make_config(fact=FactSettings(facts_file=str(path))))
    alice_user, alice = fx.join("alice")
    fx.hub.receive(alice_user, "/fact")
    assert alice.take() == ["*** Fact: Honey keeps for ages."]


@pytest.mark.parametrize(
    ("text", "told"),
    [
        ("No stop", "No stop."),
        ("A stop.", "A stop."),
        ("Really?", "Really?"),
        ("Wow!", "Wow!"),
        ('He said "hi."', 'He said "hi."'),
        ("(An aside.)", "(An aside.)"),
        ("And so on\u2026", "And so on\u2026"),
    ],
)
def test_as_sentence(text: str, told: str) -> None:
    assert as_sentence(text) == told


def test_every_bundled_fact_is_a_sentence() -> None:
    fx = HubFixture()
    for fact in fx.plugins.states["fact"]["facts"]:
        assert fact[0].isupper() or fact[0].isdigit(), fact
        assert as_sentence(fact) == fact, fact


def test_a_config_file_replaced_by_a_fifo_is_not_read_on_reload(tmp_path: Path) -> None:
    # Found in review: SIGHUP then blocked the loop until someone wrote to it.
    from chatd.config import load
    from tests.helpers import PumpedServer

    path = tmp_path / "chatd.toml"
    path.write_text("[server]\nport = 0\n[admin]\nenabled = false\n[plugins]\ndirs = []\n")
    pumped = PumpedServer(load(path))
    try:
        path.unlink()
        os.mkfifo(path)
        report = pumped.server.reload("config")
        assert report.failed
        assert list(report) == [
            f"config: reload failed, kept the old settings: {path}: not a regular file,"
            " so it cannot be read again"
        ]
    finally:
        pumped.close()
