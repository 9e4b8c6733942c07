"""The HTTP transport under every fetcher, against httpx.MockTransport: the retry and backoff
schedule, Retry-After, dropped connections, resumed downloads (Range/If-Range, restart when the
file changed), auth per host and the one-line phrases. Real servers are in tests/integration."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest

from pyrkt.errors import FetchError
from pyrkt.fetch.transport import Download, Transport, retry_after, status_text, transport_text

URL = "https://example.com/file"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorded(Transport):
    """A transport whose waits are recorded instead of slept."""

    def __init__(self, handler: Handler, **kwargs: object) -> None:
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []

        def log(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        super().__init__(transport=httpx.MockTransport(log), **kwargs)  # type: ignore[arg-type]

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def answers(*responses: httpx.Response | Exception) -> Handler:
    it = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = next(it)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def untrusted(request: httpx.Request) -> httpx.Response:
    """A server whose certificate the client does not trust."""
    try:
        raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    except ssl.SSLError as e:
        raise httpx.ConnectError(str(e), request=request) from e


def cut(body: bytes, at: int) -> Iterator[bytes]:
    yield body[:at]
    raise httpx.ReadError("connection reset by peer")


# -- retries ----------------------------------------------------------------------------------


def test_5xx_and_429_are_retried_with_doubling_backoff_then_the_answer_is_returned() -> None:
    t = Recorded(answers(httpx.Response(503), httpx.Response(502), httpx.Response(429), httpx.Response(200)))
    assert t.send("GET", URL, what=URL).status_code == 200
    assert t.waits == [0.5, 1.0, 2.0] and len(t.requests) == 4


def test_a_server_failing_every_try_is_one_line_with_the_status_and_the_attempts() -> None:
    t = Recorded(lambda r: httpx.Response(503), attempts=3, peer="the registry")
    with pytest.raises(FetchError) as err:
        t.send("GET", URL, what="reg/app: manifest latest")
    assert str(err.value) == "reg/app: manifest latest: the registry answered 503 Service Unavailable (after 3 attempts)"
    assert t.waits == [0.5, 1.0] and len(t.requests) == 3


def test_retry_after_is_honoured_up_to_the_bound() -> None:
    t = Recorded(answers(httpx.Response(429, headers={"Retry-After": "3"}),
                         httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200)))
    assert t.send("GET", URL, what=URL).status_code == 200
    assert t.waits == [3.0, 10.0]


def test_retry_after_as_an_http_date_is_the_seconds_until_then() -> None:
    resp = httpx.Response(503, headers={"Retry-After": "Sun, 06 Dec 2026 07:00:30 GMT"})
    now = 1796540400.0  # 2026-12-06 07:00:00 UTC
    assert retry_after(resp, now=now) == 30.0
    assert retry_after(resp, now=now + 60) == 0.0  # in the past: at once
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(503)) is None


def test_a_dropped_connection_is_retried_and_then_named_with_the_host() -> None:
    request = httpx.Request("GET", URL)
    t = Recorded(answers(httpx.RemoteProtocolError("peer closed", request=request), httpx.Response(200)))
    assert t.send("GET", URL, what=URL).status_code == 200 and t.waits == [0.5]

    t = Recorded(lambda r: (_ for _ in ()).throw(httpx.ConnectError("Connection refused", request=r)),
                 attempts=2)
    with pytest.raises(FetchError) as err:
        t.send("GET", URL, what=URL)
    assert str(err.value) == f"{URL}: cannot connect to example.com: Connection refused (after 2 attempts)"


def test_asked_once_any_status_comes_back_and_a_failure_has_no_attempt_count() -> None:
    t = Recorded(lambda r: httpx.Response(503))
    assert t.send("GET", URL, what=URL, retry=False).status_code == 503 and len(t.requests) == 1
    t = Recorded(lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=r)))
    with pytest.raises(FetchError) as err:
        t.send("GET", URL, what=URL, retry=False)
    assert str(err.value) == f"{URL}: example.com did not answer in time"


def test_an_untrusted_certificate_is_not_retried_and_says_how_to_skip_the_check() -> None:
    t = Recorded(untrusted)
    with pytest.raises(FetchError) as err:
        t.send("GET", URL, what="what")
    assert str(err.value).startswith("what: TLS with example.com failed: ")
    assert str(err.value).endswith("(--insecure-options=tls skips the check)")
    assert len(t.requests) == 1 and t.waits == []


def test_a_probe_is_false_for_a_server_that_is_down_and_an_error_for_an_untrusted_certificate() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    assert Recorded(lambda r: httpx.Response(404)).probe(URL, what="reg") is True
    assert Recorded(down).probe(URL, what="reg") is False
    with pytest.raises(FetchError, match=r"^reg: TLS with example.com failed: .*skips the check\)$"):
        Recorded(untrusted).probe(URL, what="reg")


# -- plain http, auth ---------------------------------------------------------------------------


def test_plain_http_is_refused_even_behind_a_redirect_unless_allowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://example.com/plain"})
        return httpx.Response(200, content=b"plain")

    with pytest.raises(FetchError, match=r"redirect to http://example.com/plain over plain http"):
        Recorded(handler).send("GET", URL, what=URL)
    resp = Recorded(handler, insecure=frozenset({"http"})).send("GET", URL, what=URL, stream=False)
    assert resp.content == b"plain"


def test_a_401_is_answered_once_and_the_authorization_goes_to_that_host_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ok = request.headers.get("authorization") == "Bearer t0ken" or request.url.host != "example.com"
        return httpx.Response(200 if ok else 401)

    t = Recorded(handler)
    asked: list[int] = []

    def on_401(resp: httpx.Response) -> bool:
        asked.append(resp.status_code)
        t.authorize("example.com", "Bearer t0ken")
        return True

    assert t.send("GET", URL, what=URL, on_401=on_401).status_code == 200
    assert asked == [401] and t.waits == []
    t.send("GET", "https://other.example/x", what="x")
    assert [r.headers.get("authorization") for r in t.requests] == [None, "Bearer t0ken", None]

    t = Recorded(lambda r: httpx.Response(401))
    assert t.send("GET", URL, what=URL, on_401=lambda resp: True).status_code == 401  # once only
    assert len(t.requests) == 2


# -- downloads ----------------------------------------------------------------------------------


def test_a_broken_download_is_resumed_with_range_and_if_range() -> None:
    body = bytes(range(256)) * 40

    def handler(request: httpx.Request) -> httpx.Response:
        rng = request.headers.get("range")
        if rng is None:
            return httpx.Response(200, content=cut(body, 1000),
                                  headers={"ETag": '"v1"', "Content-Length": str(len(body))})
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, content=body[start:],
                              headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})

    t = Recorded(handler)
    with Download(t, URL, what=URL, check=lambda r: None) as d:
        assert b"".join(d.chunks()) == body
    assert [(r.headers.get("range"), r.headers.get("if-range")) for r in t.requests] == \
        [(None, None), ("bytes=1000-", '"v1"')]
    assert t.waits == [0.5]


def test_a_file_changed_meanwhile_comes_whole_and_is_started_again_from_byte_zero() -> None:
    old, new = b"a" * 5000, b"b" * 7000

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-range") == '"v1"':  # the file is v2 now: If-Range fails, all of it
            return httpx.Response(200, content=new, headers={"ETag": '"v2"', "Content-Length": str(len(new))})
        return httpx.Response(200, content=cut(old, 3000), headers={"ETag": '"v1"', "Content-Length": str(len(old))})

    got = bytearray()
    restarts: list[int] = []

    def restart() -> None:
        restarts.append(len(got))
        got.clear()

    with Download(Recorded(handler), URL, what=URL, check=lambda r: None, restart=restart) as d:
        for chunk in d.chunks():
            got += chunk
    assert bytes(got) == new and restarts == [3000] and d.offset == len(new) == d.length


def test_content_named_by_digest_skips_what_was_read_when_the_range_is_ignored() -> None:
    body = b"0123456789" * 500
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=cut(body, 1234) if len(calls) == 1 else body)

    with Download(Recorded(handler), URL, what=URL, check=lambda r: None) as d:
        assert b"".join(d.chunks()) == body
    assert calls[1].headers["range"] == "bytes=1234-"


def test_a_resume_at_the_wrong_place_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "range" in request.headers:
            return httpx.Response(206, content=b"x", headers={"Content-Range": "bytes 0-0/10"})
        return httpx.Response(200, content=cut(b"y" * 10, 5))

    with Download(Recorded(handler), URL, what=URL, check=lambda r: None) as d, \
            pytest.raises(FetchError, match=r"resumed the download at the wrong place \('bytes 0-0/10' for byte 5\)"):
        b"".join(d.chunks())


@pytest.mark.parametrize(("name_host", "text"), [
    (False, f"{URL}: the download broke at byte 100 of 400: connection reset by peer (after 3 attempts)"),
    (True, f"{URL}: the connection to example.com broke: connection reset by peer at byte 100 (after 3 attempts)"),
])
def test_breaks_in_a_row_without_a_new_byte_give_up_naming_the_byte(name_host: bool, text: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "range" in request.headers:
            return httpx.Response(206, content=cut(b"", 0), headers={"Content-Range": "bytes 100-399/400"})
        return httpx.Response(200, content=cut(b"z" * 400, 100), headers={"Content-Length": "400"})

    t = Recorded(handler, attempts=3)
    with Download(t, URL, what=URL, check=lambda r: None, name_host=name_host) as d, \
            pytest.raises(FetchError) as err:
        b"".join(d.chunks())
    assert str(err.value) == text
    assert t.waits == [0.5, 1.0]


def test_phrases() -> None:
    request = httpx.Request("GET", URL)
    assert status_text(httpx.Response(404)) == "404 Not Found"
    assert transport_text(httpx.ConnectTimeout("t", request=request), "h:1") == "h:1 did not answer in time"
    assert transport_text(httpx.ConnectError("refused\nmore", request=request), "h:1") == "cannot connect to h:1: refused"
    assert transport_text(httpx.ReadError("", request=request), "h:1") == "the connection to h:1 broke: ReadError"
