"""The page in a real browser: Debian's Chromium driven by Playwright, against
a real ``chatd serve`` process, beside nc users on real sockets.

Every page runs under the policy the server sends (its one script and one
style by hash), so each test also fails on a Content-Security-Policy report,
an uncaught page error, or a dialog (an ``alert`` that got through). Waits are
Playwright's ``expect`` with a deadline, never a sleep; and no test evaluates
a string in the page's own world with ``wait_for_function``: the policy
(rightly) refuses that, as it would refuse any injected script.

Most tests share one server (``shared``), each with nicknames and rooms of its
own; the ones that restart it, or want its rooms empty, start their own. Where
the page waits on its own timers (a reconnect's backoff, a nickname asked for
again), the test stands in for time with Playwright's clock, and for a network
that fails with a routed WebSocket, instead of waiting in real time.

Without Playwright or Chromium these tests skip and say why (CI installs
Chromium: .ci/run). Screenshots go to the test's tmp_path, and also to
$CHATD_SCREENSHOTS when it is set, for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.certs import Certificate
from tests.helpers import WAIT, LineClient, ServerProcess, make_config, running_server

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright cannot be imported: pip install -e '.[test]'",
    exc_type=ImportError,  # not installed, or installed without what it needs (greenlet)
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, WebSocketRoute

CHROMIUM = (
    os.environ.get("CHATD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium: apt-get install chromium, or set CHATD_CHROMIUM (CI installs it)",
)

#: Chromium as root in a container: no sandbox, no GPU, and no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Playwright counts in milliseconds; the house's WAIT is seconds. Every
#: action and every expect waits at most this long (not Playwright's 30 s).
TIMEOUT_MS = WAIT * 1000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
XSS = "<img src=x onerror=alert(1)>"
XSS_FLAG = '<img src=x onerror="window.__xss=1">'
#: The shared server: no flood control (a test fills a room at once) and no
#: cap per address (every page and nc user comes from 127.0.0.1).
SHARED_SETTINGS = "[limits]\nflood_rate = 0\nmax_per_ip = 0\n"

# The page's own numbers (chat.html) that tests count on.
MAX_LINES = 1000  # lines kept per room or conversation
NICK_RETRY_S = (1, 2, 4, 8, 10)  # its waits before asking again for a nick still taken
NICK_WAIT_MS = 120_000  # how long it keeps asking
BACKOFF_MAX_S = 30  # its longest wait between reconnects

expect = sync_api.expect


@pytest.fixture(scope="session")
def web_cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """The certificate the https:// test's server has: the browser is started
    trusting its key (and no other one it could not verify)."""
    return Certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def browser(web_cert: Certificate) -> Iterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    trust = f"--ignore-certificate-errors-spki-list={web_cert.spki_sha256()}"
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, trust]
            )
        except sync_api.Error as exc:  # a Chromium too new for this Playwright, say
            first = str(exc).strip().splitlines()[0]
            pytest.skip(f"chromium at {CHROMIUM} would not start under playwright: {first}")
        yield launched
        launched.close()


@dataclass
class Tab:
    """One user's page (its own browser context: its own cookies and socket),
    and what went wrong in it."""

    page: Page
    problems: list[str] = field(default_factory=list)

    @property
    def messages(self) -> Locator:
        return self.page.locator("#messages")

    def state(self, state: str) -> None:
        expect(self.page.locator("#app")).to_have_attribute("data-state", state)

    def name(self, nick: str) -> None:
        """Choose ``nick`` in the dialog and wait until the page is chatting as it."""
        self.state("naming")
        self.page.fill("#nick", nick)
        self.page.press("#nick", "Enter")
        self.state("chatting")
        expect(self.page.locator("#me")).to_have_text(nick)

    def say(self, text: str) -> None:
        """Type ``text`` and press Enter, as a person would."""
        self.page.fill("#input", text)
        self.page.press("#input", "Enter")
        expect(self.page.locator("#input")).to_have_value("")  # it was sent

    def sees(self, text: str) -> None:
        expect(self.messages).to_contain_text(text)

    def shows_room(self, room: str) -> None:
        expect(self.page.locator("#title")).to_have_text(room)

    def room_button(self, room: str) -> Locator:
        return self.page.locator("#rooms button", has_text=room)

    def at_bottom(self) -> bool:
        """Whether the message list is scrolled all the way down."""
        gap: int = self.messages.evaluate("m => m.scrollHeight - m.scrollTop - m.clientHeight")
        return gap <= 1

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` with a deadline, letting Playwright deliver the
        page's events (a routed WebSocket) in between."""
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.page.wait_for_timeout(10)


def _watch(page: Page, problems: list[str]) -> None:
    def console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("Refused to"):
            problems.append(f"CSP: {text}")

    def dialog(box: Any) -> None:
        problems.append(f"dialog: {box.message}")
        box.dismiss()

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", dialog)


@pytest.fixture(scope="session")
def idle_tabs() -> list[Tab]:
    """Pages a test is done with, each in a browser context of its own, for
    the next test to load the page in again: a new document (a new script, a
    new WebSocket; the page keeps nothing in storage), without the cost of a
    new context and renderer."""
    return []


@pytest.fixture
def open_tab(browser: Browser, idle_tabs: list[Tab]) -> Iterator[Callable[..., Tab]]:
    """open_tab(url, viewport=DESKTOP, before=None) -> a Tab, the page loading
    (Tab.state and Tab.name wait for it); ``before(context)`` runs before the
    page loads (a clock, a route), in a context of its own. Each test's tabs
    are checked for problems after it; the plain ones are kept for the next."""
    tabs: list[tuple[Tab, bool]] = []

    def open_(
        url: str,
        viewport: dict[str, int] = DESKTOP,
        before: Callable[[BrowserContext], None] | None = None,
    ) -> Tab:
        if before is None and idle_tabs:
            tab = idle_tabs.pop()
            tab.page.set_viewport_size(viewport)
        else:
            context = browser.new_context(viewport=viewport)
            context.set_default_timeout(TIMEOUT_MS)
            if before is not None:
                before(context)
            tab = Tab(context.new_page())
            _watch(tab.page, tab.problems)
        tabs.append((tab, before is None))
        tab.page.goto(url, wait_until="commit")
        return tab

    yield open_
    problems = [p for tab, _ in tabs for p in tab.problems]
    for tab, plain in tabs:
        tab.problems.clear()
        if plain:
            tab.page.goto("about:blank", wait_until="commit")  # its user leaves the chat now
            tab.page.emulate_media(color_scheme="light")
            idle_tabs.append(tab)
        else:
            tab.page.context.close()
    assert problems == []


def _serve(folder: Path, web_port: int, settings: str) -> tuple[ServerProcess, str]:
    folder.mkdir(exist_ok=True)
    config = folder / "chatd.toml"
    config.write_text(settings)
    server = ServerProcess(
        folder,
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--web-port",
        str(web_port),
    )
    host, port = server.web_address
    return server, f"http://{host}:{port}/"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., tuple[ServerProcess, str]]]:
    """served(name, web_port=0, settings="") -> (a chatd process, its page's
    URL), with its own folder and chatd.toml; all stopped after."""
    servers: list[ServerProcess] = []

    def serve(name: str, web_port: int = 0, settings: str = "") -> tuple[ServerProcess, str]:
        server, url = _serve(tmp_path / name, web_port, settings)
        servers.append(server)
        return server, url

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """One server for the tests that neither restart it nor need it empty;
    each of them uses nicknames and rooms no other test uses."""
    server, url = _serve(tmp_path_factory.mktemp("shared"), 0, SHARED_SETTINGS)
    yield server, url
    server.stop()


@pytest.fixture
def nc(shared: tuple[ServerProcess, str]) -> Iterator[Callable[[str], LineClient]]:
    """nc(nick) -> an nc user on the shared server, closed after the test."""
    clients: list[LineClient] = []

    def connect(nick: str) -> LineClient:
        clients.append(_nc(shared[0], nick))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


def _nc(server: ServerProcess, nick: str) -> LineClient:
    client = LineClient(server.address)
    client.register(nick)
    return client


def test_two_pages_and_an_nc_user_chat_stay_apart_by_room_stay_text_and_come_back(
    served: Callable[..., tuple[ServerProcess, str]], open_tab: Callable[..., Tab]
) -> None:
    server, url = served("first")
    alice, bob = open_tab(url), open_tab(url)
    alice.name("alice")
    bob.name("bob")
    carol = _nc(server, "carol")

    # All three in #lobby, each sees the others (a page shows its own line as sent).
    alice.say("hi from alice's page")
    bob.sees("hi from alice's page")
    carol.expect("<alice> hi from alice's page")
    bob.say("and hello from bob")
    alice.sees("and hello from bob")
    carol.expect("<bob> and hello from bob")
    carol.send("carol here, on nc")
    alice.sees("carol here, on nc")
    bob.sees("carol here, on nc")
    expect(alice.page.locator("#members")).to_contain_text("carol")

    # Alice joins #games from the side panel; her line there does not reach Bob.
    alice.page.fill("#join-name", "games")
    alice.page.press("#join-name", "Enter")
    alice.shows_room("#games")
    op = alice.page.locator("#members .item", has=alice.page.locator(".op"))
    expect(op).to_have_text(re.compile(r"^A\s*alice\s*op$"))  # she made it: its operator
    alice.say("a secret for #games")
    alice.say("/join #lobby")
    alice.shows_room("#lobby")
    alice.say("back in the lobby")  # after the secret, from the same connection
    bob.sees("back in the lobby")
    expect(bob.messages).not_to_contain_text("a secret for #games")
    expect(bob.page.locator("#rooms")).not_to_contain_text("#games")
    expect(alice.page.locator("#rooms")).to_contain_text("#games")

    # Markup from the chat stays text: no element, no script, no dialog.
    alice.say(XSS)
    alice.say(XSS_FLAG)
    carol.expect(f"<alice> {XSS}")
    expect(bob.page.get_by_text(XSS, exact=True)).to_be_visible()
    expect(bob.page.get_by_text(XSS_FLAG, exact=True)).to_be_visible()
    for tab in (alice, bob):
        assert tab.page.locator("#messages img").count() == 0
        assert tab.page.locator("img").count() == 0
        assert tab.page.evaluate("window.__xss") is None

    # The server goes away; a new one comes up on the same web port. "Retry
    # now" (rather than the rest of a random backoff) and both pages find it
    # again under their nicks, Alice back in #games too.
    _, web_port = server.web_address
    carol.close()
    assert server.signal(signal.SIGTERM) == 0
    alice.state("reconnecting")
    bob.state("reconnecting")
    server, url2 = served("second", web_port)
    assert url2 == url
    for tab, nick in ((alice, "alice"), (bob, "bob")):
        tab.page.dispatch_event("#retry", "click")  # an attempt under way, or none
        tab.state("chatting")
        expect(tab.page.locator("#me")).to_have_text(nick)
    expect(alice.page.locator("#rooms")).to_contain_text("#games")
    alice.shows_room("#lobby")
    bob.say("we are back")
    alice.sees("we are back")
    dave = _nc(server, "dave")
    alice.say("and nc is back too")
    dave.expect("<alice> and nc is back too")


def test_the_nick_dialog_refuses_a_taken_nick_asks_a_password_and_gives_what_was_kept(
    shared: tuple[ServerProcess, str],
    nc: Callable[[str], LineClient],
    open_tab: Callable[..., Tab],
) -> None:
    _, url = shared
    owner = nc("erin")
    owner.send("/register correct-horse-42")
    owner.expect(re.compile(r"^\*\*\* Registered: the nickname erin is yours\."))
    owner.send("/quit")
    owner.wait_closed()
    # Private messages for erin while she is away: kept for her account.
    kit, lou = nc("kit"), nc("lou")
    kit.send("/msg erin are you there?")
    kit.expect(re.compile(r"erin is offline; your message is kept"))
    kit.send("/msg erin call me when you can")
    kit.expect(re.compile(r"erin is offline; your message is kept"))
    lou.send("/msg erin lunch on friday?")
    lou.expect(re.compile(r"erin is offline; your message is kept"))
    abe = open_tab(url)
    abe.name("abe")

    tab = open_tab(url)
    page = tab.page
    tab.state("naming")
    # Escape does not close the dialog (there is no chat without a nick).
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(page.locator("#naming")).to_be_visible()
    tab.state("naming")
    page.fill("#nick", "abe")
    page.press("#nick", "Enter")
    expect(page.locator("#nick-error")).to_contain_text("taken")
    tab.state("naming")
    page.fill("#nick", "two words")
    page.press("#nick", "Enter")
    expect(page.locator("#nick-error")).to_contain_text("not a valid nickname")
    expect(page.locator("#password")).to_be_hidden()

    page.fill("#nick", "erin")
    page.press("#nick", "Enter")
    expect(page.locator("#password")).to_be_visible()
    expect(page.locator("#nick-error")).to_contain_text("registered")
    page.fill("#password", "correct-horse-42")
    page.press("#password", "Enter")
    tab.state("chatting")
    expect(page.locator("#me")).to_have_text("erin")

    # What was kept is unread in each writer's conversation; the room she is
    # in says who wrote, once.
    pms = page.locator("#pms")
    expect(pms.locator("button", has_text="kit").locator(".badge")).to_have_text("2")
    expect(pms.locator("button", has_text="lou").locator(".badge")).to_have_text("1")
    expect(page).to_have_title("(3) #lobby · chatd")
    expect(tab.messages.locator(".line.notice").last).to_contain_text(
        "While you were away, kit (2) and lou (1) wrote to you privately"
    )
    pms.locator("button", has_text="kit").click()
    tab.shows_room("kit")
    expect(tab.messages.locator(".line.old .text")).to_have_text(
        ["are you there?", "call me when you can"]
    )
    expect(tab.messages.locator(".sep")).to_have_text(
        ["Kept for you while you were away", "End of private messages kept for you."]
    )
    expect(page).to_have_title("(1) kit · chatd")


def test_commands_private_messages_history_and_a_final_quit(
    shared: tuple[ServerProcess, str],
    nc: Callable[[str], LineClient],
    open_tab: Callable[..., Tab],
) -> None:
    _, url = shared
    cleo = nc("cleo")
    cleo.send("/join #hist")
    cleo.send("an early line, before the pages came")
    cleo.send("/topic Everything about chatd")
    cleo.expect(re.compile(r"topic"))
    ned = open_tab(url)
    ned.name("ned")
    ned.say("/join #hist")
    ned.shows_room("#hist")

    # The room's recent lines, dimmed, between the server's own words.
    expect(ned.messages.locator(".sep").first).to_contain_text("Recent chat in #hist")
    expect(ned.messages.locator(".line.old")).to_contain_text(["an early line"])
    expect(ned.page.locator("#topic")).to_have_text("Everything about chatd")

    ned.say("/me waves")  # shown at once, as nc users see it
    expect(ned.messages.locator(".line.acted").last).to_contain_text("ned waves")
    cleo.expect("* ned waves")
    ned.say("/fact")  # a plugin command, typed as in nc: its answer is a notice
    expect(ned.messages.locator(".line.notice").last).to_contain_text("Fact")

    cleo.send("/msg ned psst, just for you")
    expect(ned.page.locator("#pms")).to_contain_text("cleo")
    expect(ned.page.locator("#pms .badge")).to_have_text("1")
    ned.page.locator("#pms button", has_text="cleo").click()
    expect(ned.page.locator("#title")).to_have_text("cleo")
    expect(ned.page.locator("#input")).to_be_focused()
    ned.sees("psst, just for you")
    ned.say("got it")  # a plain line in a conversation goes to that person
    cleo.expect("*ned* got it")
    ned.sees("got it")  # the server's echo of our own private message

    # /me in a conversation is a private action; a command that acts on a room
    # is not sent from one (it would act in public, in #hist): the page says so
    # and keeps the text.
    ned.say("/me waves privately")
    cleo.expect("*ned* * ned waves privately")
    expect(ned.messages.locator(".line.acted").last).to_contain_text("ned waves privately")
    for typed, said in (("/topic our secret plans", "/topic acts on a room"),):
        ned.page.fill("#input", typed)
        ned.page.press("#input", "Enter")
        expect(ned.messages.locator(".line.error").last).to_contain_text(said)
        expect(ned.messages.locator(".line.error").last).to_contain_text("#hist")
        expect(ned.page.locator("#input")).to_have_value(typed)
    ned.say("/fact")  # any other command goes; its answer shows here
    expect(ned.messages.locator(".line.notice").last).to_contain_text("Fact")
    # Up recalls earlier lines without losing one being typed; Down brings it back.
    ned.page.fill("#input", "half a thought")
    ned.page.press("#input", "ArrowUp")
    expect(ned.page.locator("#input")).to_have_value("/fact")
    ned.page.press("#input", "ArrowUp")
    expect(ned.page.locator("#input")).to_have_value("/me waves privately")
    ned.page.press("#input", "ArrowDown")
    ned.page.press("#input", "ArrowDown")
    expect(ned.page.locator("#input")).to_have_value("half a thought")
    ned.room_button("#hist").click()
    ned.shows_room("#hist")
    ned.say("said in the room")
    before = cleo.lines_until("<ned> said in the room")
    assert [line for line in before if "secret plans" in line] == []

    # /quit is final: the page says why, and Escape does not hide it; it waits
    # to be asked to come back. A long reason wraps inside the dialog.
    reason = "gone-" + "x" * 300
    ned.say(f"/quit {reason}")
    cleo.expect(re.compile(rf"ned .*{reason}"))
    ned.state("closed")
    gone = ned.page.locator("#gone")
    ned.page.keyboard.press("Escape")
    ned.page.keyboard.press("Escape")
    expect(gone).to_be_visible()
    expect(ned.page.locator("#gone-reason")).to_contain_text(reason)
    overflow = "d => d.scrollWidth - d.clientWidth"
    assert gone.evaluate(overflow) <= 0
    assert ned.page.locator("#gone-reason").evaluate(overflow) <= 0
    ned.page.click("#again")
    ned.state("chatting")
    expect(ned.page.locator("#me")).to_have_text("ned")


def test_rooms_count_unread_lines_and_switching_keeps_the_keyboard_at_hand(
    shared: tuple[ServerProcess, str],
    nc: Callable[[str], LineClient],
    open_tab: Callable[..., Tab],
) -> None:
    _, url = shared
    eve = nc("eve")
    eve.send("/join #garden")
    fay = open_tab(url)
    fay.name("fay")
    fay.say("/join #garden")
    fay.shows_room("#garden")

    # A room picked in the side panel: the message box has the focus, ready.
    fay.room_button("#lobby").click()
    fay.shows_room("#lobby")
    expect(fay.page.locator("#input")).to_be_focused()

    # Lines in the other room: its count, and the tab's title.
    eve.send("a line for the garden")
    badge = fay.room_button("#garden").locator(".badge")
    expect(badge).to_have_text("1")
    expect(fay.page).to_have_title("(1) #lobby · chatd")

    # Keyboard focus on a room stays on it while the list is drawn anew under it.
    fay.room_button("#garden").focus()
    eve.send("another line for the garden")
    expect(badge).to_have_text("2")
    expect(fay.room_button("#garden")).to_be_focused()
    fay.page.keyboard.press("Enter")
    fay.shows_room("#garden")
    expect(fay.page.locator("#input")).to_be_focused()
    expect(fay.page).to_have_title("#garden · chatd")


def test_the_list_stays_at_the_bottom_follows_only_from_there_and_keeps_1000_lines(
    shared: tuple[ServerProcess, str],
    nc: Callable[[str], LineClient],
    open_tab: Callable[..., Tab],
) -> None:
    _, url = shared
    gus = open_tab(url)
    gus.name("gus")
    gus.say("/join #busy")
    gus.shows_room("#busy")
    hal = nc("hal")
    hal.send("/join #busy")
    gus.sees("hal joined #busy")
    hal.send_raw(b"".join(f"line {n} of a busy room\n".encode() for n in range(60)))
    gus.sees("line 59 of a busy room")
    gus.until(gus.at_bottom, "the list at its bottom")

    # The window narrowed (a phone turned, a keyboard opened): still at the bottom.
    gus.page.set_viewport_size({"width": 390, "height": 600})
    gus.until(gus.at_bottom, "the list at its bottom after a resize")
    gus.page.set_viewport_size(DESKTOP)
    gus.until(gus.at_bottom, "the list at its bottom after another")

    # Read back, and a new line does not pull the list down: a button says so.
    jump = gus.page.locator("#jump")
    gus.messages.evaluate("list => { list.scrollTop = 0; }")
    hal.send("a line while gus reads back")
    expect(jump).to_be_visible()
    assert not gus.at_bottom()
    jump.click()
    expect(jump).to_be_hidden()
    gus.until(gus.at_bottom, "the list at its bottom after the button")
    expect(gus.page.get_by_text("a line while gus reads back")).to_be_in_viewport()

    # A full list, then more: the oldest lines go, and the new top line keeps
    # its header (who said it).
    lines = gus.messages.locator("> li")
    hal.send_raw(b"".join(f"flood {n}\n".encode() for n in range(MAX_LINES)))
    gus.sees(f"flood {MAX_LINES - 1}")
    expect(lines).to_have_count(MAX_LINES)
    hal.send_raw(b"".join(f"more {n}\n".encode() for n in range(150)))
    gus.sees("more 149")
    expect(lines).to_have_count(MAX_LINES)
    expect(lines.first).to_contain_text("flood 150")
    expect(lines.first.locator(".nick")).to_have_text("hal")
    gus.until(gus.at_bottom, "the list at its bottom after the flood")


def _ghost_route(routes: list[tuple[WebSocketRoute, WebSocketRoute]]) -> Callable[..., None]:
    """A route for the page's WebSocket through to the server, whose page side
    can be closed alone: the server keeps the other side, as it does a
    connection a sleeping laptop left half-open."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_close(lambda code, reason: None)  # the page's close does not reach the server
        routes.append((ws, server))

    return route


def test_after_a_reconnect_the_page_waits_for_its_old_connection_to_let_go_of_its_nick(
    shared: tuple[ServerProcess, str],
    nc: Callable[[str], LineClient],
    open_tab: Callable[..., Tab],
) -> None:
    _, url = shared
    jon = nc("jon")
    jon.send("/join #ivy")
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def before(context: BrowserContext) -> None:
        context.clock.install()
        context.route_web_socket(re.compile(r"/ws$"), _ghost_route(routes))

    ivy = open_tab(url, before=before)
    ivy.name("ivy")
    ivy.say("/join #ivy")
    ivy.shows_room("#ivy")
    page, clock = ivy.page, ivy.page.clock
    banner = page.locator("#banner-text")

    # The page's side goes; the server still holds ivy for the old one. Time
    # stands still from here, and moves as far as the test says.
    clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)
    routes[0][0].close()
    ivy.state("reconnecting")
    clock.fast_forward(1000)  # its first wait, 0.5 s give or take half
    ivy.until(lambda: len(routes) == 2, "the page to connect again")
    ivy.state("waiting")
    expect(banner).to_contain_text("Waiting for the server to let go of your old connection")
    for seconds in NICK_RETRY_S:  # it asks again and again, each wait longer
        expect(banner).to_contain_text(f"again in {seconds} s")
        clock.fast_forward(seconds * 1000)
    ivy.state("waiting")
    expect(page.locator("#naming")).to_be_hidden()

    # The server lets go of the old connection: the next ask gets ivy back.
    routes[0][1].close()
    jon.expect(re.compile(r"^\*\*\* ivy left"))
    clock.fast_forward(NICK_RETRY_S[-1] * 1000)
    clock.resume()
    ivy.state("chatting")
    expect(page.locator("#me")).to_have_text("ivy")
    expect(page.locator("#rooms")).to_contain_text("#ivy")

    # Again; and meanwhile the user may choose another nick in the dialog.
    routes[1][0].close()
    ivy.state("reconnecting")
    clock.fast_forward(1000)
    ivy.until(lambda: len(routes) == 3, "the page to connect again")
    ivy.state("waiting")
    page.click("#rename")
    ivy.state("naming")
    expect(page.locator("#nick")).to_have_value("ivy")
    expect(page.locator("#nick-error")).to_contain_text("still holds ivy")
    clock.fast_forward(NICK_WAIT_MS)  # long enough: it stops asking, and says why
    expect(page.locator("#nick-error")).to_contain_text("The nickname ivy is taken")
    ivy.state("naming")
    page.fill("#nick", "ivy2")
    page.press("#nick", "Enter")
    ivy.state("chatting")
    expect(page.locator("#me")).to_have_text("ivy2")


def test_reconnect_waits_grow_with_jitter_up_to_30_seconds(
    shared: tuple[ServerProcess, str], open_tab: Callable[..., Tab]
) -> None:
    _, url = shared
    refused: list[WebSocketRoute] = []

    def refuse(ws: WebSocketRoute) -> None:  # a network where every connection fails
        refused.append(ws)
        ws.close()

    def before(context: BrowserContext) -> None:
        context.clock.install()
        context.add_init_script("Math.random = () => 0.999;")  # the most jitter there is
        context.route_web_socket(re.compile(r"/ws$"), refuse)

    tab = open_tab(url, before=before)
    page, clock = tab.page, tab.page.clock
    tab.until(lambda: len(refused) == 1, "the page's first connection")
    clock.pause_at(page.evaluate("Date.now()") / 1000 + 1)
    banner = page.locator("#banner-text")
    # 0.5 s, 1 s, 2 s, ... times 1.5 (rounded), then never more than 30 s.
    for attempt, seconds in enumerate((1, 1, 3, 6, 12, 24, 30, 30), start=1):
        tab.state("reconnecting")
        while len(refused) < attempt:  # each jump fires the next attempt, once it is set
            clock.fast_forward(BACKOFF_MAX_S * 1000 * 2)
        expect(banner).to_have_text(f"Connection lost. Reconnecting in {seconds} s…")
    assert len(refused) == 8


def _shoot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), animations="disabled")  # the drawer's slide, finished
    folder = os.environ.get("CHATD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
    return path


def test_screenshots_at_desktop_and_phone_size(
    tmp_path: Path, served: Callable[..., tuple[ServerProcess, str]], open_tab: Callable[..., Tab]
) -> None:
    server, url = served("one")
    carol = _nc(server, "carol")
    carol.send("/topic Anything goes, be kind")
    carol.send("morning all! coffee is on")
    desk = open_tab(url, DESKTOP)
    desk.name("alice")
    phone = open_tab(url, PHONE)
    phone.name("bob")
    desk.say("morning carol! the new build runs fine on my laptop")
    carol.send("nice. did you try the browser page yet?")
    phone.say("I'm on it right now, from my phone")
    desk.say("/me waves at bob")
    desk.say("/fact")
    carol.send("/msg alice lunch at noon?")
    desk.say("/join #games")
    desk.shows_room("#games")
    desk.say("/join #lobby")
    desk.shows_room("#lobby")
    phone.sees("waves at bob")
    expect(desk.messages.locator(".line.notice")).to_contain_text("Fact")
    expect(desk.page.locator("#pms .badge")).to_have_text("1")

    _shoot(desk.page, tmp_path, "chat-1280x800.png")
    _shoot(phone.page, tmp_path, "chat-390x844.png")
    background = "getComputedStyle(document.body).backgroundColor"
    light = desk.page.evaluate(background)
    desk.page.emulate_media(color_scheme="dark")  # the system's dark mode
    assert desk.page.evaluate(background) != light
    _shoot(desk.page, tmp_path, "chat-1280x800-dark.png")

    # On a phone the side panel is a drawer behind the menu button, and
    # nothing is wider than the screen; inputs are 16px (no zoom on focus).
    side = phone.page.locator("#side")
    expect(side).not_to_be_in_viewport()
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.page.locator("#input").evaluate("i => getComputedStyle(i).fontSize") == "16px"
    phone.page.click("#menu")
    expect(side).to_be_in_viewport()
    expect(phone.page.locator("#members")).to_contain_text("carol")
    _shoot(phone.page, tmp_path, "chat-390x844-drawer.png")
    phone.page.keyboard.press("Escape")
    expect(side).not_to_be_in_viewport()


def test_the_page_over_https_chats_over_wss_with_an_nc_user(
    open_tab: Callable[..., Tab], web_cert: Certificate
) -> None:
    with running_server(make_config(tls=web_cert.settings())) as server:
        assert server.address is not None
        bob = LineClient(server.address)
        bob.register("bob_tls")
        host, port = server.tls_addresses["web"]
        tab = open_tab(f"https://{host}:{port}/")
        tab.name("alice_tls")
        bob.expect("*** alice_tls joined")
        assert tab.page.evaluate("location.protocol") == "https:"
        tab.say("over wss")
        bob.expect("<alice_tls> over wss")
        bob.send("and back")
        tab.sees("and back")
        bob.close()
        tab.page.goto("about:blank", wait_until="commit")  # it leaves before the server stops
