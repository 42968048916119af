"""Fan-out: lines for every member of a group, gathered and handed out once per loop iteration.

Rule: publishing a line costs O(1) however many members there are, and
delivering costs O(1) per member per loop iteration, never O(lines x members):

* :meth:`Group.publish` appends the encoded line (and whose line it is) to the
  batch of this iteration. No member is touched.
* :meth:`Group.flush` (the reactor calls it once per iteration, before it
  writes) joins the batch into one bytes object and hands that same object to
  every member (``deliver_batch``: a connection with nothing queued writes it
  out at once). A member that sent lines in this batch gets memoryview slices
  of it around its own lines instead (a sender never gets its own line back).
* A member that is sent something of its own (a reply, a notice) in the middle
  of an iteration is first caught up with the batch so far
  (:meth:`Group.catch_up`), so every member sees exactly the order in which
  things happened, as if each line had been queued for each member at once.

A member gets exactly the lines published while it is in: from the end of the
batch when it joins, up to the moment it leaves. Nothing here does I/O: members
are links (the reactor's connections, the tests' fake links) that queue or
write what they are given. The batch lives for one iteration, so its memory is
bounded by what the loop read in that iteration.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from itertools import accumulate
from typing import Protocol


class Member(Protocol):
    """What a group needs of a link (a Link is one): ``deliver`` queues broadcast
    data and never calls back into the group; the group keeps ``group`` and
    ``group_pos`` up to date."""

    group: Group | None  # the group it is in, if any
    group_pos: int  # how many of the group's lines it has been given

    def deliver(self, data: bytes | memoryview) -> None: ...

    def deliver_batch(self, data: bytes) -> None:
        """Like ``deliver``, for the whole batch at the end of a loop iteration:
        a link with nothing queued ahead of it may write it out at once."""
        ...


class Group:
    """Members that all get every line published, each but the ones it sent itself."""

    def __init__(self) -> None:
        self.members: set[Member] = set()
        self._lines: list[bytes] = []  # published in this iteration
        self._own: dict[Member, list[int]] = {}  # sender -> indices of its lines in _lines
        self._base = 0  # the number of lines published before _lines[0]

    def __len__(self) -> int:
        return len(self.members)

    def join(self, member: Member) -> None:
        member.group = self
        member.group_pos = self._base + len(self._lines)
        self.members.add(member)

    def leave(self, member: Member) -> None:
        """Stop delivering to ``member``, once it has what was published while it was in."""
        self.catch_up(member)
        member.group = None
        self.members.discard(member)

    def publish(self, data: bytes, sender: Member | None = None) -> None:
        """``data`` (complete encoded lines) for every member but ``sender``."""
        if sender is not None:
            self._own.setdefault(sender, []).append(len(self._lines))
        self._lines.append(data)

    def catch_up(self, member: Member) -> None:
        """Hand ``member`` what was published since it was last given anything.

        Linear in the lines it is given: the runs between its own lines (an
        ascending list) go out joined, one ``deliver`` a run, so a member that
        sent 30,000 lines in one iteration and then gets a reply costs one pass.
        """
        start = member.group_pos - self._base
        lines = self._lines
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
        member.group_pos = self._base + end

    def flush(self) -> None:
        """Hand every member the lines of this iteration it has not had yet."""
        lines = self._lines
        if not lines:
            return
        count = len(lines)
        base, own = self._base, self._own
        end = base + count
        self._lines, self._own, self._base = [], {}, end
        blob = lines[0] if count == 1 else b"".join(lines)
        offsets: list[int] | None = None
        for member in self.members:
            start = member.group_pos - base
            if start == 0 and member not in own:
                member.deliver_batch(blob)  # the common case: the whole batch, shared
            elif start < count:
                if offsets is None:
                    offsets = list(accumulate(map(len, lines), initial=0))
                for piece in _pieces(blob, offsets, start, own.get(member, ())):
                    member.deliver(piece)
            member.group_pos = end


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
