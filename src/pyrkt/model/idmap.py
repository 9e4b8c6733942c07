"""A pod's user-namespace id range (``--private-users``): its uids and gids 0..count-1 are the
host's shift..shift+count-1, as rkt's ``pkg/user/uid_range.go``. Kept in the pod dir as
``private-users-prepared`` ("SHIFT:COUNT", rkt's file and format).
"""

from __future__ import annotations

from pyrkt.model.values import Value

DEFAULT_COUNT = 0x10000
# rkt's choice: a random multiple of 65536 below 2**31 (devpts parses its uid= and gid= options
# as signed ints), never 0, so the host's own ids (and root) are never inside a pod's range
MAX_BLOCK = 0x7FFF
NOBODY = 65534
MAX_ID = 4294967294  # the highest uid or gid: (uid_t)-1 is no id, setresuid(-1) leaves the uid as it is (root)


class IdRange(Value):
    shift: int
    count: int = DEFAULT_COUNT

    @classmethod
    def random(cls, count: int = DEFAULT_COUNT, *, avoid: tuple[tuple[int, int], ...] = ()) -> IdRange:
        """rkt's random range; one that overlaps a host range in ``avoid`` ((start, count): the
        subordinate ids of /etc/subuid and /etc/subgid, given to users' own containers) is
        drawn again, so that the pod's ids are nobody's on the host."""
        import os  # not secrets: it imports base64 and re, ~3 ms on the run path

        r = cls(0, count)
        for _ in range(64):
            r = cls((int.from_bytes(os.urandom(4), "little") % MAX_BLOCK + 1) << 16, count)
            if not any(start < r.shift + r.count and r.shift < start + n for start, n in avoid):
                break
        return r

    @classmethod
    def parse(cls, text: str, *, where: str = "private-users-prepared") -> IdRange:
        """rkt's "SHIFT:COUNT"; a range that would reach host uid 0 or past 2**32 is refused."""
        from pyrkt.errors import PyrktError

        shift, sep, count = text.strip().partition(":")
        if not (sep and shift.isdigit() and count.isdigit()):
            raise PyrktError(f"{where}: invalid id range {text.strip()!r}: want SHIFT:COUNT")
        r = cls(int(shift), int(count))
        if r.shift == 0 or r.count == 0 or r.shift + r.count > 1 << 32:
            raise PyrktError(f"{where}: id range {text.strip()!r} is out of bounds")
        return r

    def __str__(self) -> str:
        return f"{self.shift}:{self.count}"

    def map_line(self) -> str:
        """The line of /proc/PID/uid_map and gid_map: inside 0..count-1 is host shift.."""
        return f"0 {self.shift} {self.count}\n"

    def host(self, inside: int) -> int:
        """The host id of ``inside``; an id beyond the range becomes the pod's "nobody" (65534),
        never a host id outside the range."""
        return self.shift + (inside if 0 <= inside < self.count else min(NOBODY, self.count - 1))

    def contains(self, host: int) -> bool:
        return self.shift <= host < self.shift + self.count


def subordinate_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """The (start, count) ranges of an /etc/subuid or /etc/subgid file ("name:start:count"
    lines); lines of another shape are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return tuple(out)
