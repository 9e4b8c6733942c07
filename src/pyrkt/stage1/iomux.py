"""The iomux helper of an attachable app (rkt's iottymux): one small process per app whose
stdio is in ``stream`` or ``tty`` mode, started by pod init, never for apps in the default
``log`` mode. It serves the app's streams, or its pty's master, on listening unix sockets
pod init made in the pod dir (``pyrkt.model.stdio``), copies the app's output to every
attacher at once and to pod init's log pipe, and feeds the app's input from attachers: in
stream mode a whole line at a time, so two attachers' lines never mix (as rkt's); a tty gets
the bytes as typed. It holds the pty's master, so the app keeps its terminal when attachers
go, and exits once the app's side of every stream has closed.

Run as ``python -I -S iomux.py ENDPOINT=FD,LISTEN[,LOG] ... [tty-from=FD]``, it imports only
builtin and extension modules (``_socket``, not ``socket``), as the lean pod init does.
``tty-from`` is a unix socket on which the app sends its pty's master (SCM_RIGHTS): the app
opens its pty in its own /dev/pts, where it is ``/dev/pts/0``, not in pod init's root.
"""

from __future__ import annotations

import _socket  # type: ignore[import-not-found]  # the C half of `socket`, without enum
import os
import select
import sys

CHUNK = 65536
MAX_PENDING = 1 << 20  # an attacher this far behind is dropped rather than stall the app
LINE_MAX = 16384


def write_all(fd: int, data: bytes) -> bool:
    """Blocking write of ``data``; False if the reader has gone."""
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except InterruptedError:
            continue
        except OSError:
            return False
        data = data[n:]
    return True


def receive_fd(fd: int) -> int:
    """The fd the app sends on ``fd`` (SCM_RIGHTS); -1 if it closed without sending one."""
    sock = _socket.socket(fileno=fd)
    try:
        _, ancdata, _, _ = sock.recvmsg(1, _socket.CMSG_LEN(4))
    finally:
        sock.close()
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            return int.from_bytes(data[:4], sys.byteorder)
    return -1


class Endpoint:
    __slots__ = ("name", "app", "listener", "log", "is_input", "is_output", "pending")

    def __init__(self, name: str, app: int, listener: int, log: int) -> None:
        self.name = name
        self.app = app  # the app's side: the stdin pipe's write end, an output's read end, the pty master
        self.listener = listener
        self.log = log  # pod init's log pipe for this output, -1 for none
        self.is_input = name in ("stdin", "tty")
        self.is_output = name != "stdin"
        self.pending = b""  # input the app has not taken yet: it is never waited for, so its
        # output keeps flowing meanwhile (a full pty input queue must not stall the pty's output)


class Client:
    __slots__ = ("fd", "endpoint", "line", "pending", "done")

    def __init__(self, fd: int, endpoint: Endpoint) -> None:
        self.fd = fd
        self.endpoint = endpoint
        self.line = b""  # stream input not yet a whole line
        self.pending = b""  # output it has not taken yet
        self.done = False  # it has no more input (shut its side down) but still takes output


class Mux:
    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints
        self.poll = select.poll()
        self.clients: dict[int, Client] = {}
        self.listeners = {e.listener: (e, _socket.socket(fileno=e.listener)) for e in endpoints}
        self.open_app = {e.app: e for e in endpoints}
        for e in endpoints:
            os.set_blocking(e.app, False)
            self.poll.register(e.app, select.POLLIN if e.is_output else 0)
            self.poll.register(e.listener, select.POLLIN)

    def run(self) -> None:
        while self.open_app:
            for fd, events in self.poll.poll():
                if fd in self.open_app:
                    self.on_app(self.open_app[fd], events)
                elif fd in self.listeners:
                    self.on_accept(fd)
                elif fd in self.clients:
                    self.on_client(self.clients[fd], events)
        for c in list(self.clients.values()):
            self.drop(c)

    def close(self, e: Endpoint) -> None:
        """The app's side of ``e`` is gone: its attachers get what is left and the end."""
        self.poll.unregister(e.app)
        del self.open_app[e.app]  # its fd stays open until we exit
        for c in list(self.clients.values()):
            if c.endpoint is e:
                for _ in range(10):  # a second at most: an attacher stuck longer loses the rest
                    if not c.pending:
                        break
                    if not select.select([], [c.fd], [], 0.1)[1]:
                        continue
                    try:
                        c.pending = c.pending[os.write(c.fd, c.pending):]
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                self.drop(c)

    def on_app(self, e: Endpoint, events: int) -> None:
        if events & select.POLLOUT:
            self.feed(e, b"")
        data = b""
        if e.is_output and events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = os.read(e.app, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's last slave fd closed
                data = b""
            if data:
                if e.log >= 0 and not write_all(e.log, data):
                    e.log = -1
                for c in list(self.clients.values()):
                    if c.endpoint is e:
                        self.send(c, data)
                return
        elif not events & (select.POLLHUP | select.POLLERR):
            return
        self.close(e)

    def on_accept(self, fd: int) -> None:
        e, sock = self.listeners[fd]
        try:
            conn, _ = sock._accept()  # type: ignore[attr-defined]  # the fd, not a socket object
        except OSError:
            return
        os.set_blocking(conn, False)
        self.clients[conn] = Client(conn, e)
        self.poll.register(conn, select.POLLIN)

    def on_client(self, c: Client, events: int) -> None:
        if events & select.POLLOUT:
            self.send(c, b"")
            if c.fd not in self.clients:
                return
        if not events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            return
        if c.done:  # gone altogether
            self.drop(c)
            return
        try:
            data = os.read(c.fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        e = c.endpoint
        if not data:
            if e.name == "stdin" and c.line and e.app in self.open_app:
                self.feed(e, c.line)  # its last line, unterminated
            if not e.is_output:
                self.drop(c)
                return
            c.done = True
            self.poll.modify(c.fd, select.POLLOUT if c.pending else 0)
            return
        if not e.is_input or e.app not in self.open_app:
            return  # an output's attacher has nothing to say
        if e.name == "tty":
            self.feed(e, data)
            return
        lines = (c.line + data).split(b"\n")
        c.line = lines.pop()
        out = b"".join(line + b"\n" for line in lines)
        if len(c.line) >= LINE_MAX:  # no line so long waits for its end
            out, c.line = out + c.line, b""
        if out:
            self.feed(e, out)

    def feed(self, e: Endpoint, data: bytes) -> None:
        """Queue input for the app and write what it takes now; beyond MAX_PENDING untaken, what
        attachers send is dropped."""
        e.pending = (e.pending + data)[:MAX_PENDING]
        try:
            while e.pending:
                e.pending = e.pending[os.write(e.app, e.pending):]
        except BlockingIOError:
            pass
        except OSError:  # the app's side has gone
            e.pending = b""
        if e.app in self.open_app:
            self.poll.modify(e.app, (select.POLLIN if e.is_output else 0) | (select.POLLOUT if e.pending else 0))

    def send(self, c: Client, data: bytes) -> None:
        """Queue ``data`` for ``c`` and write what it takes; a client too far behind is dropped."""
        c.pending += data
        try:
            while c.pending:
                n = os.write(c.fd, c.pending)
                c.pending = c.pending[n:]
        except BlockingIOError:
            if len(c.pending) > MAX_PENDING:
                self.drop(c)
                return
        except OSError:
            self.drop(c)
            return
        self.poll.modify(c.fd, (0 if c.done else select.POLLIN) | (select.POLLOUT if c.pending else 0))

    def drop(self, c: Client) -> None:
        if self.clients.pop(c.fd, None) is not None:
            self.poll.unregister(c.fd)
            os.close(c.fd)


def parse(argv: list[str]) -> tuple[list[Endpoint], int]:
    endpoints = []
    tty_from = -1
    for arg in argv:
        name, _, value = arg.partition("=")
        fds = [int(x) for x in value.split(",")]
        if name == "tty-from":
            tty_from = fds[0]
            continue
        app, listener = fds[0], fds[1]
        endpoints.append(Endpoint(name, app, listener, fds[2] if len(fds) > 2 else -1))
    return endpoints, tty_from


def main(argv: list[str]) -> int:
    endpoints, tty_from = parse(argv[1:])
    if tty_from >= 0:
        master = receive_fd(tty_from)
        if master < 0:
            return 0  # the app did not start
        for e in endpoints:
            if e.name == "tty":
                e.app = master
    Mux(endpoints).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
