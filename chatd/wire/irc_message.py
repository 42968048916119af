"""IRC messages, sans-IO: one line of bytes in -> a :class:`Message`; a Message -> one line out.

Rule: this module knows the grammar of one IRC line (RFC 1459/2812 with IRCv3
message tags) and nothing else: no connection state, no users, no I/O. Parsing
is tolerant where real clients are sloppy (extra spaces, a stray "\\r", Latin-1
text) and strict where a line cannot be a message (no command, a bad command, a
NUL or CR inside, a line past the size limits). Formatting is total for text:
whatever a field holds, :func:`format_message` puts no CR, LF or NUL inside the
line and never more than :data:`MAX_MESSAGE_BYTES` after the tags. What it
cannot put on the wire without changing its meaning (a command that is not one,
a space inside a middle param) is our bug, not the peer's, and raises ValueError.

Parsing does not clean text: CTCP's "\\x01" and the formatting codes must reach
:func:`ctcp_of` and :func:`strip_formatting`. Whoever turns a parsed message into
chat text cleans it after that, with chatd.wire.text (and strips formatting
first: text.one_line takes "\\x1e", strikethrough, for a line break).

Also here, because every part of the IRC listener needs them: the formatting
codes, CTCP, the case fold of names, and the numerics' names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from chatd.wire.text import one_line

__all__ = [
    "CASEMAPPING",
    "CTCP_DELIMITER",
    "MAX_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_PARAMS",
    "MAX_TAGS_BYTES",
    "EmptyLine",
    "InputTooLong",
    "IrcParseError",
    "Message",
    "ctcp",
    "ctcp_of",
    "format_message",
    "irc_fold",
    "mask_match",
    "parse",
    "strip_formatting",
]

#: Longest message, in bytes, counting its "\r\n" and not counting the tags
#: (RFC 1459 section 2.3; IRCv3 kept it for the part after the tags). Clients
#: size what they send by it, and many cut what they receive at it.
MAX_MESSAGE_BYTES: Final = 512

#: Longest tags section, in bytes, counting its leading "@" and the space after
#: it (IRCv3 message-tags: 4094 bytes of tags from the client, as many added by
#: a server, and the separators). Past it a server must refuse the line, not cut it.
MAX_TAGS_BYTES: Final = 8191

#: Longest line :func:`parse` can accept, without its "\r\n": the most tags plus
#: the longest message. The IRC listener's input buffer should use this as its
#: line limit, so a line over 512 bytes reaches :func:`parse` and is answered
#: with ERR_INPUTTOOLONG rather than dropped by the buffer.
MAX_LINE_BYTES: Final = MAX_TAGS_BYTES + MAX_MESSAGE_BYTES - 2

#: Most params in a message (RFC 1459 and 2812: fourteen middle params, then the
#: rest of the line is the fifteenth whether or not it starts with ":"). Older
#: clients cannot read more, so :func:`format_message` refuses to make more.
MAX_PARAMS: Final = 15


class IrcParseError(ValueError):
    """A line the peer sent that cannot be an IRC message; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EmptyLine(IrcParseError):
    """A line with nothing in it but spaces: clients send them, and servers
    ignore them without a word (modern.ircdocs.horse, "Message Format")."""


class InputTooLong(IrcParseError):
    """A line past :data:`MAX_MESSAGE_BYTES` or :data:`MAX_TAGS_BYTES`; the
    listener answers it with ERR_INPUTTOOLONG (417) and drops the line."""


@dataclass(frozen=True, slots=True)
class Message:
    """One IRC message.

    ``command`` is an upper-case verb ("PRIVMSG") or a numeric as three digits
    ("001"); ``params`` holds every param, the trailing one too (a trailing
    param is an ordinary param that may hold spaces); ``source`` is the prefix
    without its ":" ("" when there is none); ``tags`` are the IRCv3 tags as
    (key, value) pairs, values unescaped, "" for a tag without a value.
    """

    command: str
    params: tuple[str, ...] = ()
    source: str = ""
    tags: tuple[tuple[str, str], ...] = ()


# --- parsing ----------------------------------------------------------------

# A command is letters, or a numeric of exactly three digits (RFC 2812 2.3.1).
_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")
_TAG_UNESCAPES: Final = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
# A backslash and what follows it, if anything: an unknown escape ("\b") stands
# for the character itself, and a lone backslash at the end for nothing (IRCv3).
_TAG_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)


def _decode(raw: bytes) -> str:
    # UTF-8 first, and Latin-1 for a line that is not UTF-8 ("hybrid" decoding,
    # what IRC clients themselves do): old clients and old scripts still send
    # Latin-1 or CP1252, and Latin-1 shows their accented letters as letters
    # where U+FFFD would lose them. Latin-1, not CP1252, because every byte is a
    # Latin-1 character, so the fallback never fails.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _TAG_ESCAPE.sub(lambda m: _TAG_UNESCAPES.get(m[1], m[1]), value)


def _parse_tags(section: str) -> tuple[tuple[str, str], ...]:
    tags: dict[str, str] = {}
    for tag in section.split(";"):
        key, _, value = tag.partition("=")
        if not key:
            continue  # ";;" or "=x": nothing to name; keys are opaque otherwise
        # A key given twice: only the last occurrence counts (IRCv3), where it stands.
        tags.pop(key, None)
        tags[key] = _unescape(value)
    return tuple(tags.items())


#: How much of a bad token a reason quotes: enough to recognise it, and a
#: reason stays one short line whatever the peer sent.
SHOWN_CHARS: Final = 20


def _shown(token: str) -> str:
    """A token from the peer, fit to quote in a reason: one clean line, short."""
    token = one_line(token)
    return token if len(token) <= SHOWN_CHARS else token[:SHOWN_CHARS] + "..."


def parse(line: bytes) -> Message:
    """One line as the peer sent it, without its "\\n" (a trailing "\\r" is
    dropped here) -> the :class:`Message` it is.

    Spaces before, between and after the parts are tolerated, as common servers
    do; the verb is upper-cased. Raises :class:`InputTooLong` for a line past the
    limits, :class:`EmptyLine` for a blank one and :class:`IrcParseError` for
    any other line that cannot be a message.
    """
    line = line.rstrip(b"\r").lstrip(b" ")
    tags: tuple[tuple[str, str], ...] = ()
    tag_section: bytes | None = None  # between the "@" and the space after the tags
    body = line
    if line.startswith(b"@"):
        end = line.find(b" ")
        size = len(line) if end < 0 else end + 1
        if size > MAX_TAGS_BYTES:
            raise InputTooLong(f"the tags are {size} bytes; IRCv3 allows {MAX_TAGS_BYTES}")
        if end < 0:
            raise IrcParseError("tags with no command after them")
        tag_section, body = line[1:end], line[end + 1 :]
    if len(body) + 2 > MAX_MESSAGE_BYTES:
        raise InputTooLong(
            f"the message is {len(body) + 2} bytes with its CR LF; IRC allows {MAX_MESSAGE_BYTES}"
        )
    if b"\0" in line or b"\r" in line or b"\n" in line:
        raise IrcParseError("the line holds a NUL, CR or LF byte")
    if tag_section is not None:
        tags = _parse_tags(_decode(tag_section))
    text = _decode(body).lstrip(" ")
    if not text:
        if tag_section is not None:
            raise IrcParseError("tags with no command after them")
        raise EmptyLine("an empty line")

    source = ""
    if text.startswith(":"):
        source, space, text = text[1:].partition(" ")
        text = text.lstrip(" ")
        if not space or not text:
            raise IrcParseError(f'a source (":{_shown(source)}") with no command after it')

    command, _, rest = text.partition(" ")
    if not _COMMAND.fullmatch(command):
        raise IrcParseError(
            f'"{_shown(command)}" is not a command: a command is letters or a 3-digit numeric'
        )

    params: list[str] = []
    while rest := rest.lstrip(" "):
        if rest.startswith(":"):
            params.append(rest[1:])  # the trailing param: the rest of the line, spaces and all
            break
        if len(params) == MAX_PARAMS - 1:
            params.append(rest.rstrip(" "))  # the 15th param is the rest, as RFC 2812 has it
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return Message(command.upper(), tuple(params), source, tags)


# --- formatting -------------------------------------------------------------

# Each of these would end the line early (CR, LF) or cut it short in C clients (NUL).
_STRIP_BREAKS: Final = str.maketrans("", "", "\0\r\n")
_TAG_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", ";": "\\:", " ": "\\s", "\r": "\\r", "\n": "\\n", "\0": None}
)


def _clean(field: str) -> str:
    if "\0" in field or "\r" in field or "\n" in field:
        return field.translate(_STRIP_BREAKS)
    return field


def _token(field: str, what: str) -> str:
    """A field that must be one word on the wire (a source, a middle param, a
    tag key), NUL, CR and LF stripped; ValueError if it still cannot be one."""
    token = _clean(field)
    if not token or " " in token:
        raise ValueError(f"{what} {field!r} cannot be sent: it is empty or holds a space")
    return token


def _tags_section(tags: tuple[tuple[str, str], ...]) -> str:
    rendered = []
    for key, value in tags:
        key = _token(key, "the tag key")
        if ";" in key or "=" in key:
            raise ValueError(f"the tag key {key!r} cannot be sent: it holds ';' or '='")
        value = value.translate(_TAG_ESCAPES)
        rendered.append(f"{key}={value}" if value else key)  # an empty value is a missing one
    return "@" + ";".join(rendered) + " "


def _utf8_cut(data: bytes, size: int) -> bytes:
    """The longest start of ``data`` (valid UTF-8) within ``size`` bytes that
    ends on a character boundary."""
    if len(data) <= size:
        return data
    while size > 0 and data[size] & 0xC0 == 0x80:  # a continuation byte: inside a character
        size -= 1
    return data[:size]


def format_message(msg: Message) -> bytes:
    """``msg`` as one line of UTF-8 ending in "\\r\\n".

    NUL, CR and LF are stripped from every field (tag values escape CR and LF
    instead, as IRCv3 has it), so nothing a field holds can end the line early
    or start another. The last param goes out as a trailing param (after " :")
    when it is empty, starts with ":" or holds a space. The tags section comes
    first when there are tags, and is never cut (IRCv3: tags are sent whole or
    not at all; the tags chatd sends are its own, and short).

    The message after the tags is at most :data:`MAX_MESSAGE_BYTES` with its
    "\\r\\n": when it would be longer, the last param is cut (sent as a trailing
    param, so it stays one) at the last whole UTF-8 character that fits, and
    nothing else is touched. Raises ValueError, our bug and not the peer's, for
    what cannot be sent as given: a command that is not letters or a 3-digit
    numeric, a source, a tag key or a param before the last that is empty or
    holds a space (or a middle param that starts with ":"), more than
    :data:`MAX_PARAMS` params, or a message that does not fit even with its last
    param empty.
    """
    command, params = msg.command.upper(), msg.params
    if not _COMMAND.fullmatch(command):
        raise ValueError(f"{command!r} is not an IRC command or numeric")
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{command} has {len(params)} params; IRC allows {MAX_PARAMS}")
    head = [f":{_token(msg.source, 'the source')} " if msg.source else "", command]
    for param in params[:-1]:
        param = _token(param, "a middle param")
        if param.startswith(":"):
            raise ValueError(f"a middle param {param!r} cannot start with ':'")
        head += (" ", param)
    limit = MAX_MESSAGE_BYTES - 2  # for the message, without its CR LF
    line = "".join(head)
    if params:
        last = _clean(params[-1])
        trailing = not last or last.startswith(":") or " " in last
        line += (" :" if trailing else " ") + last
    data = line.encode("utf-8", "replace")  # "replace": a lone surrogate becomes "?"
    if len(data) > limit:
        if not params:
            raise ValueError(f"{command} is {len(data)} bytes with no params to cut")
        start = ("".join(head) + " :").encode("utf-8", "replace")
        if len(start) > limit:
            raise ValueError(f"{command} is {len(start)} bytes before its last param")
        data = start + _utf8_cut(_clean(params[-1]).encode("utf-8", "replace"), limit - len(start))
    if msg.tags:
        data = _tags_section(msg.tags).encode("utf-8", "replace") + data
    return data + b"\r\n"


# --- text inside messages -----------------------------------------------------

# mIRC's formatting codes (modern.ircdocs.horse/formatting): colour \x03 with up
# to two digits and a background after a comma (a comma with no digit after it
# is text), hex colour \x04 with RRGGBB and ",RRGGBB" the same way, and the
# toggles: bold \x02, reset \x0f, monospace \x11, reverse \x16, italic \x1d,
# strikethrough \x1e, underline \x1f.
_FORMATTING = re.compile(
    r"\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"
    r"|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)


def strip_formatting(text: str) -> str:
    """``text`` without IRC formatting codes (bold, colours and the rest), so
    what an IRC user writes reaches nc users as the words alone. Other control
    characters are left for chatd.wire.text to clean."""
    if text.isprintable():  # the common case: no control character, one C-level scan
        return text
    return _FORMATTING.sub("", text)


CTCP_DELIMITER: Final = "\x01"


def ctcp_of(text: str) -> tuple[str, str] | None:
    """The (VERB, args) of a CTCP message ("\\x01ACTION waves\\x01"), or None if
    ``text`` is not one. The closing "\\x01" is optional, as some clients leave
    it off; the verb is upper-cased."""
    if not text.startswith(CTCP_DELIMITER):
        return None
    body = text[1:]
    if body.endswith(CTCP_DELIMITER):
        body = body[:-1]
    verb, _, args = body.partition(" ")
    return (verb.upper(), args) if verb else None


def ctcp(verb: str, args: str = "") -> str:
    """A CTCP message: "\\x01VERB args\\x01" ("\\x01VERB\\x01" without args). A
    "\\x01" inside either is dropped, so the result is one CTCP whatever they hold."""
    verb = verb.replace(CTCP_DELIMITER, "").upper()
    args = args.replace(CTCP_DELIMITER, "")
    body = f"{verb} {args}" if args else verb
    return f"{CTCP_DELIMITER}{body}{CTCP_DELIMITER}"


#: The casemapping chatd advertises in RPL_ISUPPORT, and the one :func:`irc_fold` implements.
CASEMAPPING: Final = "ascii"
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def irc_fold(name: str) -> str:
    """``name`` (a nickname or a channel) case-folded as CASEMAPPING=ascii does:
    A-Z to a-z and nothing else, so two names are the same name when their
    folds are equal. For chatd's names, which are ASCII, this is the
    ``lower()`` the hub compares nicknames and rooms with.

    Not rfc1459: that casemapping also takes ``[]\\^`` for the upper case of
    ``{}|~``. chatd's nicknames may hold ``[]\\^{}|`` (chatd.core.nicks) but
    the hub tells them apart (``[tom]`` and ``{tom}`` are two people, as for
    nc users), so ascii is what chatd does and what the listener advertises.
    """
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


def mask_match(mask: str, name: str) -> bool:
    """Whether ``name`` matches the IRC mask ``mask`` (``*``: any run of
    characters, ``?``: any one), ignoring case as :func:`irc_fold` does.

    In linear passes with one remembered star, never by a regular expression:
    a client's mask may hold hundreds of stars, and a backtracking match of
    ``*a*a*a...`` against every nick on the server would stall the loop.
    """
    mask, name = irc_fold(mask), irc_fold(name)
    m = n = 0
    star, resume = -1, 0  # the last "*" seen in mask, and where name resumes after it
    while n < len(name):
        if m < len(mask) and mask[m] in ("?", name[n]):
            m, n = m + 1, n + 1
        elif m < len(mask) and mask[m] == "*":
            star, resume = m, n
            m += 1
        elif star >= 0:  # let the last star take one more character
            resume += 1
            m, n = star + 1, resume
        else:
            return False
    return mask[m:].strip("*") == ""


# --- numerics -----------------------------------------------------------------
# The replies the IRC listener sends, named as modern.ircdocs.horse names them:
# RFC 2812's names, but for 462 (ERR_ALREADYREGISTERED, which RFC 2812 spells
# ERR_ALREADYREGISTRED) and those RFC 2812 does not have (005 is RPL_ISUPPORT
# now, not RPL_BOUNCE; 265, 266, 333 and 417 came later).

# Registration
RPL_WELCOME: Final = "001"
RPL_YOURHOST: Final = "002"
RPL_CREATED: Final = "003"
RPL_MYINFO: Final = "004"
RPL_ISUPPORT: Final = "005"
RPL_UMODEIS: Final = "221"
# LUSERS
RPL_LUSERCLIENT: Final = "251"
RPL_LUSEROP: Final = "252"
RPL_LUSERUNKNOWN: Final = "253"
RPL_LUSERCHANNELS: Final = "254"
RPL_LUSERME: Final = "255"
RPL_LOCALUSERS: Final = "265"
RPL_GLOBALUSERS: Final = "266"
# AWAY, WHOIS and WHO. 316 is left out: RFC 1459's RPL_WHOISCHANOP, which
# RFC 2812 already lists as unused and no server sends.
RPL_AWAY: Final = "301"
RPL_UNAWAY: Final = "305"
RPL_NOWAWAY: Final = "306"
RPL_WHOISUSER: Final = "311"
RPL_WHOISSERVER: Final = "312"
RPL_WHOISOPERATOR: Final = "313"
RPL_WHOWASUSER: Final = "314"
RPL_ENDOFWHO: Final = "315"
RPL_WHOISIDLE: Final = "317"
RPL_ENDOFWHOIS: Final = "318"
RPL_WHOISCHANNELS: Final = "319"
RPL_WHOISACCOUNT: Final = "330"  # "is logged in as" (ircu, and every server with accounts)
# LIST, MODE, TOPIC, INVITE, NAMES
RPL_LISTSTART: Final = "321"
RPL_LIST: Final = "322"
RPL_LISTEND: Final = "323"
RPL_CHANNELMODEIS: Final = "324"
RPL_NOTOPIC: Final = "331"
RPL_TOPIC: Final = "332"
RPL_TOPICWHOTIME: Final = "333"
RPL_INVITING: Final = "341"
RPL_WHOREPLY: Final = "352"
RPL_NAMREPLY: Final = "353"
RPL_ENDOFNAMES: Final = "366"
# MOTD
RPL_MOTD: Final = "372"
RPL_MOTDSTART: Final = "375"
RPL_ENDOFMOTD: Final = "376"
# Errors
ERR_NOSUCHNICK: Final = "401"
ERR_NOSUCHCHANNEL: Final = "403"
ERR_CANNOTSENDTOCHAN: Final = "404"
ERR_TOOMANYCHANNELS: Final = "405"  # chatd limits the rooms one user is in
ERR_NOORIGIN: Final = "409"  # PING with no token
ERR_NORECIPIENT: Final = "411"
ERR_NOTEXTTOSEND: Final = "412"
ERR_INPUTTOOLONG: Final = "417"
ERR_UNKNOWNCOMMAND: Final = "421"
ERR_NOMOTD: Final = "422"
ERR_NONICKNAMEGIVEN: Final = "431"
ERR_ERRONEUSNICKNAME: Final = "432"
ERR_NICKNAMEINUSE: Final = "433"
ERR_PASSWDMISMATCH: Final = "464"
ERR_USERNOTINCHANNEL: Final = "441"
ERR_NOTONCHANNEL: Final = "442"
ERR_NOTREGISTERED: Final = "451"
ERR_NEEDMOREPARAMS: Final = "461"
ERR_ALREADYREGISTERED: Final = "462"
ERR_UNKNOWNMODE: Final = "472"
ERR_CHANOPRIVSNEEDED: Final = "482"
ERR_UMODEUNKNOWNFLAG: Final = "501"
ERR_USERSDONTMATCH: Final = "502"
