"""The one HTTP transport under every fetcher: the registry client, https ACIs and appc discovery.

``Transport`` is an httpx client with TLS checked against the system CAs (``SSL_CERT_FILE``
honoured) unless ``--insecure-options=tls``, plain http refused (redirects included) unless
``http``, one ``Authorization`` per host (basic credentials or a bearer token, set by whoever
answered the 401: auth.d for https and discovery, the registry's token dance for docker://),
and ``send``: one request retried with exponential backoff on 429, 5xx and dropped connections
(a ``Retry-After`` is honoured up to ``MAX_WAIT``). ``Download`` is a body that survives broken
connections: the rest is asked for with ``Range`` and ``If-Range``; a server that sends it
whole again (no ranges, or the validator changed) restarts it from byte 0. Every failure is one
line that names what was fetched (the phrases below).
"""

from __future__ import annotations

import threading

from pyrkt.errors import AccessDenied, FetchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator

    import httpx

ATTEMPTS = 4           # tries of one request (or breaks of one download in a row) before giving up
BACKOFF = 0.5          # seconds before the second try; doubled for each next one
MAX_WAIT = 10.0        # the longest a Retry-After is honoured
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
TLS_HINT = " (--insecure-options=tls skips the check)"


class Cancelled(Exception):
    """Another download of the same fetch failed, or the user interrupted: stop this one."""


# -- the phrases ----------------------------------------------------------------------------------


def status_text(resp: httpx.Response) -> str:
    """``404 Not Found``."""
    return f"{resp.status_code} {resp.reason_phrase}".strip()


def first_line(e: BaseException) -> str:
    return (str(e) or type(e).__name__).splitlines()[0]


def tls_error(e: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind a transport error, if that is what it is."""
    import ssl

    seen: BaseException | None = e
    for _ in range(8):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def transport_text(e: httpx.TransportError, host: str) -> str:
    """``cannot connect to HOST: …``, ``HOST did not answer in time``, ``the connection to HOST broke: …``."""
    import httpx

    if isinstance(e, httpx.TimeoutException):
        return f"{host} did not answer in time"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect to {host}: {first_line(e)}"
    return f"the connection to {host} broke: {first_line(e)}"


def after(attempts: int) -> str:
    return f" (after {attempts} attempts)" if attempts > 1 else ""


def retry_after(resp: httpx.Response, *, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if any."""
    value = resp.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    if not value:
        return None
    import time
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, as auth.d and the messages name it."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2]


# -- the transport --------------------------------------------------------------------------------


class Transport:
    """One httpx connection pool with pyrkt's rules for TLS, plain http, auth and retries.

    ``peer`` names the other side in status lines (``the registry answered 503 …``);
    ``plain_http_hint`` is added to a TLS error that is not about a certificate (a server
    that speaks plain http); ``cancel`` stops every retry wait and download of the transport.
    ``transport`` is for tests (an httpx.MockTransport)."""

    def __init__(self, *, insecure: frozenset[str] = frozenset(), peer: str = "the server",
                 plain_http_hint: str = "", attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 max_wait: float = MAX_WAIT, transport: httpx.BaseTransport | None = None) -> None:
        import ssl

        import httpx

        from pyrkt import __version__

        self.allow_http = "http" in insecure
        self.peer = peer
        self.plain_http_hint = plain_http_hint
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.authorization: dict[str, str] = {}  # the Authorization value by host, once one was asked for
        verify: ssl.SSLContext | bool = False if "tls" in insecure else ssl.create_default_context()
        self.http = httpx.Client(
            verify=verify, follow_redirects=True, timeout=httpx.Timeout(30.0, connect=15.0),
            headers={"User-Agent": f"pyrkt/{__version__}"}, transport=transport,
            event_hooks={"request": [self._refuse_plain_http]},
        )

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _refuse_plain_http(self, request: httpx.Request) -> None:
        """Every request, redirects included, must be https unless plain http is allowed."""
        if request.url.scheme != "https" and not self.allow_http:
            raise FetchError(f"refusing to follow a redirect to {request.url} over plain http "
                             "(use --insecure-options=http)")

    def authorize(self, host: str, value: str | None) -> None:
        """Send ``Authorization: value`` with every later request to ``host`` (None: nothing)."""
        with self.lock:
            if value:
                self.authorization[host] = value
            else:
                self.authorization.pop(host, None)

    def authorized(self, host: str) -> str | None:
        with self.lock:
            return self.authorization.get(host)

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    def delay(self, failures: int, resp: httpx.Response | None = None) -> float:
        """The wait before the next try after ``failures`` in a row: the backoff, doubled each
        time, or what the answer's ``Retry-After`` asks for, never more than ``max_wait``."""
        asked = retry_after(resp) if resp is not None else None
        wait = asked if asked is not None else self.backoff * 2 ** (failures - 1)
        return min(wait, self.max_wait)

    def tls_failure(self, e: httpx.TransportError, what: str, host: str) -> FetchError | None:
        """The one line for a TLS failure (not transient: an untrusted certificate, or not TLS)."""
        import ssl

        tls = tls_error(e)
        if tls is None:
            return None
        hint = TLS_HINT if isinstance(tls, ssl.SSLCertVerificationError) else \
            ("" if self.allow_http else self.plain_http_hint)
        return FetchError(f"{what}: TLS with {host} failed: {first_line(e)}{hint}")

    def send(self, method: str, url: str, *, what: str, headers: dict[str, str] | None = None,
             content: bytes | None = None, stream: bool = True, retry: bool = True,
             on_401: Callable[[httpx.Response], bool] | None = None) -> httpx.Response:
        """One request, retried on 429, 5xx and dropped connections (``retry=False``: asked
        once, any status returned); a 401 goes to ``on_401`` once (True: it authorized, send
        again; that is not a failed try). The answer is the caller's to close; ``what``
        starts every error line."""
        import httpx

        host = host_of(url)
        limit = self.attempts if retry else 1
        answered_401 = False
        attempt = 0
        while True:
            attempt += 1
            if self.cancel.is_set():
                raise Cancelled()
            hdrs = dict(headers or {})
            auth = self.authorized(host)
            if auth and "Authorization" not in hdrs:
                hdrs["Authorization"] = auth
            try:
                resp = self.http.send(self.http.build_request(method, url, headers=hdrs, content=content),
                                      stream=stream)
            except httpx.TransportError as e:
                failure = self.tls_failure(e, what, host)
                if failure is not None:
                    raise failure from None
                if attempt >= limit:
                    raise FetchError(f"{what}: {transport_text(e, host)}{after(attempt)}") from None
                self.sleep(self.delay(attempt))
                continue
            if resp.status_code == 401 and on_401 is not None and not answered_401:
                answered_401 = True
                try:
                    again = on_401(resp)
                except BaseException:
                    resp.close()
                    raise
                if again:
                    resp.close()
                    attempt -= 1
                    continue
            if resp.status_code in RETRY_STATUS and retry:
                resp.close()
                if attempt >= limit:
                    raise FetchError(f"{what}: {self.peer} answered {status_text(resp)}{after(attempt)}")
                self.sleep(self.delay(attempt, resp))
                continue
            return resp

    def check(self, resp: httpx.Response, what: str, *, not_found: str, denied: str) -> None:
        """Nothing for a 200, else the one line: ``WHAT: NOT_FOUND (404)`` (a NotFound),
        ``WHAT: access denied (401): DENIED``, ``WHAT: PEER answered 418 I'm a teapot``."""
        from pyrkt.errors import NotFound

        code = resp.status_code
        if code == 200:
            return
        if code == 404:
            raise NotFound(f"{what}: {not_found} (404)")
        if code in (401, 403):
            raise AccessDenied(f"{what}: access denied ({code}): {denied}", code)
        raise FetchError(f"{what}: {self.peer} answered {status_text(resp)}")

    def probe(self, url: str, *, what: str) -> bool:
        """One GET of ``url``: whether it answered at all. A certificate that is not trusted is
        an error (the one line); a server that is down or speaks no TLS is False."""
        import ssl

        import httpx

        try:
            self.http.get(url).close()
        except httpx.TransportError as e:
            failure = self.tls_failure(e, what, host_of(url))
            if failure is not None and isinstance(tls_error(e), ssl.SSLCertVerificationError):
                raise failure from None
            return False
        return True


def read_limited(resp: httpx.Response, *, what: str, limit: int, too_large: str) -> bytes:
    """The whole body of a streamed answer, refused past ``limit`` bytes (``too_large``: the
    line's end); a broken connection is the one line that names the host."""
    import httpx

    body = bytearray()
    try:
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise FetchError(f"{what}: {too_large}")
    except httpx.TransportError as e:
        raise FetchError(f"{what}: {transport_text(e, host_of(str(resp.request.url)))}") from None
    return bytes(body)


class Download:
    """The body of a GET that survives broken connections, as ``chunks()``.

    When the connection breaks, the rest is asked for (``Range: bytes=N-``, with ``If-Range``
    when the first answer had an ETag or Last-Modified) after a backoff. A ``206`` from byte N
    goes on; a whole answer again (the server ignores ranges, or the file changed) either
    calls ``restart`` (the caller throws away what it has: the bytes may differ now) or, with
    no ``restart`` (content named by its digest cannot change), skips what was read already.
    ``check(resp)`` refuses an answer that is not the body (404, 401, ...). The transport's
    ``attempts`` breaks in a row without a new byte in between give up: the line names the
    byte, and the host (``name_host``: one registry per fetch) or the whole size.
    """

    def __init__(self, transport: Transport, url: str, *, what: str, check: Callable[[httpx.Response], None],
                 headers: dict[str, str] | None = None, first: httpx.Response | None = None,
                 restart: Callable[[], None] | None = None, name_host: bool = False,
                 on_401: Callable[[httpx.Response], bool] | None = None) -> None:
        self.transport = transport
        self.url = url
        self.what = what
        self.check = check
        self.headers = {"Accept-Encoding": "identity", **(headers or {})}
        self.restart = restart
        self.name_host = name_host
        self.on_401 = on_401
        self.offset = 0        # bytes handed on so far
        self.furthest = 0      # breaks count in a row until a byte beyond this one comes
        self.failures = 0
        self.skip = 0
        self.validator = ""
        self.length: int | None = None
        self.resp: httpx.Response | None = None
        self.responses = 0     # answers asked for (the first included)
        self._open(first)

    def _open(self, first: httpx.Response | None = None) -> None:
        headers = dict(self.headers)
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        resp = first or self.transport.send("GET", self.url, what=self.what, headers=headers, on_401=self.on_401)
        self.resp = resp
        self.responses += 1
        self.skip = 0
        try:
            if self.offset and resp.status_code == 206:
                if not resp.headers.get("content-range", "").startswith(f"bytes {self.offset}-"):
                    raise FetchError(f"{self.what}: {self.transport.peer} resumed the download at the wrong place "
                                     f"({resp.headers.get('content-range')!r} for byte {self.offset})")
            else:
                self.check(resp)
                self.validator = resp.headers.get("etag") or resp.headers.get("last-modified") or ""
                self.length = _content_length(resp)
                if self.offset and self.restart is not None:
                    self.restart()
                    self.offset = 0
                else:
                    self.skip = self.offset
        except BaseException:
            resp.close()
            raise
        self.chunks_of = resp.iter_bytes()  # as received: a break loses nothing already here

    def close(self) -> None:
        if self.resp is not None:
            self.resp.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes from where the caller is (``offset``), across breaks."""
        import httpx

        transport = self.transport
        while True:
            if transport.cancel.is_set():
                raise Cancelled()
            try:
                chunk = next(self.chunks_of, None)
            except httpx.TransportError as e:
                self.failures += 1
                if self.failures >= transport.attempts:
                    raise FetchError(f"{self.what}: {self._broken(e)}{after(self.failures)}") from None
                self.close()
                transport.sleep(transport.delay(self.failures))
                self._open()
                continue
            if chunk is None:
                return
            if self.skip:
                dropped = min(self.skip, len(chunk))
                chunk, self.skip = chunk[dropped:], self.skip - dropped
            if chunk:
                self.offset += len(chunk)
                if self.offset > self.furthest:
                    self.furthest = self.offset
                    self.failures = 0
                yield chunk

    def _broken(self, e: httpx.TransportError) -> str:
        if self.name_host:
            return f"{transport_text(e, host_of(self.url))} at byte {self.offset}"
        of = f" of {self.length}" if self.length is not None else ""
        return f"the download broke at byte {self.offset}{of}: {first_line(e)}"


def _content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
