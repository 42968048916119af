"""Fan-out: lines for every member of a group, gathered and handed out once per loop iteration.

Rule: publishing a line costs O(1) however many members there are, and
delivering costs O(1) per member per loop iteration, never O(lines x members):

* :meth:`Group.publish` appends the encoded line (and whose line it is) to the
  batch of this iteration. No member is touched.
* :meth:`Fanout.flush` (the reactor calls it once per iteration, before it
  writes) flushes each group that has lines: :meth:`Group.flush` joins the
  batch into one bytes object and hands that same object to every member
  (``deliver_batch``: a connection with nothing else for this iteration writes
  it out with one call). A member that sent lines in this batch gets memoryview slices
  of it around its own lines instead (a sender never gets its own line back).
* A member that is sent something of its own (a reply, a notice) in the middle
  of an iteration is first caught up with the batch so far
  (:meth:`Group.catch_up`), so every member sees exactly the order in which
  things happened, as if each line had been queued for each member at once.

A member may be in many groups (chat: one per room it is in, and the group of
everyone); the order is kept within each group, and a direct send catches the
member up with every group it is in first. A member gets exactly the lines
published to a group while it is in it: from the end of the
batch when it joins, up to the moment it leaves. Nothing here does I/O: members
are links (the reactor's connections, the tests' fake links) that queue or
write what they are given. The batch lives for one iteration, so its memory is
bounded by what the loop read in that iteration.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Protocol


class Member(Protocol):
    """What a group needs of a link (a Link is one): ``deliver`` queues broadcast
    data and never calls back into a group; the groups keep ``groups`` (the ones
    it is in) up to date."""

    groups: set[Group]

    def deliver(self, data: bytes | memoryview) -> None: ...

    def deliver_batch(self, data: bytes) -> None:
        """Like ``deliver``, for a group's whole batch at the end of a loop
        iteration: a link with nothing else queued may send it at once."""
        ...


def catch_up(member: Member) -> None:
    """Hand ``member`` what every group it is in published since it last got
    anything: call it before sending the member anything of its own."""
    for group in member.groups:
        group.catch_up(member)


class Fanout:
    """The groups of one loop: flushed together, once per iteration, each only
    when it has lines (a thousand quiet rooms cost nothing)."""

    def __init__(self) -> None:
        self._due: list[Group] = []

    def group(self) -> Group:
        return Group(self)

    def flush(self) -> None:
        # A member's deliver never publishes, but be safe: groups that get lines
        # while others are flushed are flushed in the same call.
        while self._due:
            due, self._due = self._due, []
            for group in due:
                group.flush()


class Group:
    """Members that all get every line published, each but the ones it sent itself."""

    __slots__ = ("_ahead", "_base", "_fanout", "_lines", "_own", "members")

    def __init__(self, fanout: Fanout | None = None) -> None:
        self.members: set[Member] = set()
        self._fanout = fanout
        self._lines: list[bytes] = []  # published in this iteration
        self._own: dict[Member, list[int]] = {}  # sender -> indices of its lines in _lines
        #: Members that are not at _base: those that joined, or were caught up,
        #: in this iteration -> how many of the group's lines they have had.
        self._ahead: dict[Member, int] = {}
        self._base = 0  # the number of lines published before _lines[0]

    def __len__(self) -> int:
        return len(self.members)

    @property
    def fanout(self) -> Fanout | None:
        """The fan-out this group is flushed with, if any."""
        return self._fanout

    def join(self, member: Member) -> None:
        if member in self.members:
            return
        if self._lines:
            self._ahead[member] = self._base + len(self._lines)
        self.members.add(member)
        member.groups.add(self)

    def leave(self, member: Member) -> None:
        """Stop delivering to ``member``, once it has what was published while it was in."""
        if member not in self.members:
            return
        self.catch_up(member)
        self.members.discard(member)
        self._ahead.pop(member, None)
        member.groups.discard(self)

    def publish(
        self, data: bytes, sender: Member | None = None, skip: Iterable[Member] = ()
    ) -> None:
        """``data`` (complete encoded lines) for every member but ``sender`` and
        ``skip`` (members that get it from another group): each is passed over
        as a sender is, so the cost is in those few, not in the members."""
        lines = self._lines
        if not lines and self._fanout is not None:
            self._fanout._due.append(self)
        index = len(lines)
        if sender is not None:
            self._own.setdefault(sender, []).append(index)
        for member in skip:
            if member is not sender:
                self._own.setdefault(member, []).append(index)
        lines.append(data)

    def catch_up(self, member: Member) -> None:
        """Hand ``member`` what was published since it was last given anything.

        Linear in the lines it is given: the runs between its own lines (an
        ascending list) go out joined, one ``deliver`` a run, so a member that
        sent 30,000 lines in one iteration and then gets a reply costs one pass.
        """
        lines = self._lines
        if not lines:
            return
        base = self._base
        start = self._ahead.get(member, base) - base
        end = len(lines)
        if start >= end:
            return
        own = self._own.get(member)
        if own is None:
            member.deliver(b"".join(lines[start:]) if end - start > 1 else lines[start])
        else:
            for i in own[bisect.bisect_left(own, start) :]:
                if i > start:
                    member.deliver(b"".join(lines[start:i]))
                start = i + 1
            if start < end:
                member.deliver(b"".join(lines[start:]))
        self._ahead[member] = base + end

    def flush(self) -> None:
        """Hand every member the lines of this iteration it has not had yet."""
        lines = self._lines
        if not lines:
            return
        count = len(lines)
        base, own, ahead = self._base, self._own, self._ahead
        self._lines, self._own, self._ahead, self._base = [], {}, {}, base + count
        blob = lines[0] if count == 1 else b"".join(lines)
        special = own.keys() | ahead.keys() if ahead else own.keys()
        offsets: list[int] | None = None
        for member in self.members:
            if member not in special:
                member.deliver_batch(blob)  # the common case: the whole batch, shared
                continue
            start = ahead.get(member, base) - base
            if start == 0 and member not in own:
                member.deliver_batch(blob)
            elif start < count:
                if offsets is None:
                    offsets = list(accumulate(map(len, lines), initial=0))
                for piece in _pieces(blob, offsets, start, own.get(member, ())):
                    member.deliver(piece)


def _pieces(
    blob: bytes, offsets: list[int], start: int, skip: list[int] | tuple[()]
) -> Iterator[memoryview]:
    """Slices of ``blob`` holding lines ``start``.. but those in ``skip`` (ascending)."""
    view = memoryview(blob)
    for i in skip:
        if i < start:
            continue
        if i > start:
            yield view[offsets[start] : offsets[i]]
        start = i + 1
    if start < len(offsets) - 1:
        yield view[offsets[start] :]
