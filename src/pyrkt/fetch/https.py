"""ACI images over http(s): ``https://example.com/app-1.0.aci``, with rkt's remote cache.

``import_https`` applies the pull policy to the URL's cache record (``store.remotes``): ``never``
uses only the record, ``new`` reuses a recorded image without asking, ``update`` reuses it while
its ``Cache-Control: max-age`` lasts and then revalidates with ``If-None-Match`` (304: reuse).
A download goes into an import session's temp dir (so a killed fetch leaves only what ``gc``
cleans), is resumed with ``Range``/``If-Range`` when the connection breaks, and is retried with
backoff on 429 and 5xx. The signature (``<url>.asc`` or the one discovery found) follows the
ACI; a ``202 Accepted`` on it means "not ready yet, ask again". ``fetch.aci.import_aci`` then
checks the signature, hashes and commits; only after that is the URL recorded.

https only, unless ``--insecure-options=http``; ``tls`` skips certificate checks. A 401 is
answered once with the ``auth.d`` headers (rkt's ``auth`` kind) for the URL's host.
"""

from __future__ import annotations

import time

from pyrkt.errors import FetchError, NotFound
from pyrkt.fetch.httperrors import first_line, retry_after, status_text, tls_error, transport_text
from pyrkt.model.image import Image
from pyrkt.model.values import Value
from pyrkt.store import Store
from pyrkt.store.remotes import Remote, RemoteCache, parse_max_age

# httpx, ssl and gpg are loaded only when something is downloaded: `run` of a cached image
# decides from the cache record alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import BinaryIO

    import httpx

    from pyrkt.fetch import FetchOptions

ATTEMPTS = 4              # tries of one request (or breaks of one download in a row) before giving up
BACKOFF = 0.25            # seconds before the second try; doubled for each next one
MAX_WAIT = 10.0           # the longest a Retry-After is honoured
SIGNATURE_ATTEMPTS = 5    # asks for a signature that answers 202 Accepted ("deferred")
SIGNATURE_LIMIT = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class Answer(Value):
    """What a GET of the ACI told: 200 (downloaded) or 304 (not modified), and its cache data."""

    status: int
    etag: str = ""
    max_age: int = 0
    time: float = 0.0


def import_https(store: Store, url: str, *, source: str, options: FetchOptions,
                 signature_url: str | None = None, check: Callable[[Image], None] | None = None,
                 client: HttpClient | None = None) -> Image:
    """Fetch the ACI at ``url`` (and its signature, ``signature_url`` or ``<url>.asc``) into
    ``store`` as ``options.pull_policy`` says; returns the stored Image. ``check`` (discovery's
    name and label match) may refuse the image before anything is committed. ``client`` is for
    tests (one on a mock transport)."""
    cache = RemoteCache(store.root)
    remote = cache.get(url)
    cached = _stored(store, remote)
    policy = options.pull_policy
    if policy == "never" and cached is None:
        raise NotFound(f"image {url!r} not found in the store (pull policy never)")
    if cached is not None and remote is not None and (policy in ("never", "new") or remote.is_fresh()):
        return _checked(cached, check)

    verify = "image" not in options.insecure
    sig_url = signature_url or url + ".asc"
    check_url(url, options.insecure)
    if verify:
        check_url(sig_url, options.insecure)
    with client or HttpClient(insecure=options.insecure, config_dirs=options.config_dirs) as http, \
            store.begin_import(source) as staging:  # only its temp dir and lock: import_aci commits
        aci = staging.dir / "image.aci"
        etag = remote.etag if cached is not None and remote is not None else ""
        answer = http.download(url, aci, etag=etag, charge=staging.budget.charge)
        if answer.status == 304:
            assert cached is not None and remote is not None
            cache.put(remote.replace(etag=answer.etag or remote.etag, max_age=answer.max_age,
                                     download_time=answer.time))
            return _checked(cached, check)
        sig = staging.dir / "image.aci.asc"
        if verify:
            http.download_signature(sig_url, sig, aci_url=url)
        image = _import(store, aci, sig, source=source, verify=verify, options=options, check=check,
                        shown={str(aci): url, str(sig): sig_url})
    cache.put(Remote(url=url, image_id=image.id, signature_url=sig_url if verify else "", etag=answer.etag,
                     max_age=answer.max_age, download_time=answer.time))
    return image


def check_url(url: str, insecure: frozenset[str]) -> None:
    """https, or plain http when ``--insecure-options=http`` allows it."""
    if url.startswith("http://") and "http" not in insecure:
        raise FetchError(f"refusing to fetch {url} over plain http (use https, or --insecure-options=http)")
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"cannot fetch {url!r}: not an http(s) URL")


def _stored(store: Store, remote: Remote | None) -> Image | None:
    if remote is None:
        return None
    try:
        return store.get(remote.image_id)
    except NotFound:
        return None  # removed since: the record is stale


def _checked(image: Image, check: Callable[[Image], None] | None) -> Image:
    if check is not None:
        check(image)
    return image


def _import(store: Store, aci: Path, sig: Path, *, source: str, verify: bool, options: FetchOptions,
            check: Callable[[Image], None] | None, shown: dict[str, str]) -> Image:
    """``import_aci`` of the downloaded file; its signature errors name URLs, not temp files."""
    from pyrkt.fetch.aci import import_aci
    from pyrkt.fetch.discovery import dependency_resolver
    from pyrkt.fetch.trust import SignatureError

    dirs = options.config_dirs
    try:
        return import_aci(store, aci, source=source, signature=sig, verify=verify,
                          system_dir=dirs[0] if dirs else None, local_dir=dirs[1] if len(dirs) > 1 else None,
                          check=check, resolve_dependency=dependency_resolver(store, options))
    except SignatureError as e:
        message = e.message
        for path, url in shown.items():
            message = message.replace(repr(path), url).replace(path, url)
        raise SignatureError(message) from None


# -- HTTP ---------------------------------------------------------------------------------------


class HttpClient:
    """An httpx client for ACI and signature downloads: TLS checked against the system CAs
    (``SSL_CERT_FILE`` honoured) unless ``tls`` is insecure, retries, auth on a 401."""

    def __init__(self, *, insecure: frozenset[str] = frozenset(), config_dirs: Sequence[Path] = (),
                 attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 transport: httpx.BaseTransport | None = None) -> None:
        import ssl

        import httpx

        from pyrkt import __version__

        self.allow_http = "http" in insecure
        self.config_dirs = tuple(config_dirs)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        verify: ssl.SSLContext | bool = False if "tls" in insecure else ssl.create_default_context()
        self.http = httpx.Client(
            verify=verify, follow_redirects=True, timeout=httpx.Timeout(30.0, connect=15.0),
            headers={"User-Agent": f"pyrkt/{__version__}"}, transport=transport,
            event_hooks={"request": [self._refuse_plain_http]},
        )
        self.auth: dict[str, dict[str, str]] = {}  # Authorization headers by host, once a 401 asked

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _refuse_plain_http(self, request: httpx.Request) -> None:
        """Every request, redirects included, must be https unless plain http is allowed."""
        if request.url.scheme != "https" and not self.allow_http:
            raise FetchError(f"refusing to follow a redirect to {request.url} over plain http "
                             "(use --insecure-options=http)")

    # -- requests --------------------------------------------------------------------------

    def send(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A streamed GET, retried on 429, 5xx and broken connections; a 401 is answered once
        with the ``auth.d`` headers for the host, if there are any."""
        import ssl

        import httpx

        host = _host(url)
        delay = self.backoff
        attempt = 0
        while True:
            attempt += 1
            hdrs = {**(headers or {}), **self.auth.get(host, {})}
            try:
                resp = self.http.send(self.http.build_request("GET", url, headers=hdrs), stream=True)
            except httpx.TransportError as e:
                tls = tls_error(e)
                if tls is not None:  # not transient: an untrusted certificate, or not TLS at all
                    hint = " (--insecure-options=tls skips the check)" \
                        if isinstance(tls, ssl.SSLCertVerificationError) else ""
                    raise FetchError(f"{url}: TLS with {host} failed: {first_line(e)}{hint}") from None
                if attempt >= self.attempts:
                    raise FetchError(f"{url}: {transport_text(e, host)} (after {attempt} attempts)") from None
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code == 401 and host not in self.auth:
                self.auth[host] = _auth_headers(self.config_dirs, host)
                if self.auth[host]:
                    resp.close()
                    attempt -= 1  # authenticating is not a failed try
                    continue
            if resp.status_code in _RETRY_STATUS:
                resp.close()
                if attempt >= self.attempts:
                    raise FetchError(f"{url}: the server answered {status_text(resp)} (after {attempt} attempts)")
                time.sleep(min(retry_after(resp) or delay, MAX_WAIT))
                delay *= 2
                continue
            return resp

    def _check(self, resp: httpx.Response, url: str) -> None:
        code = resp.status_code
        if code == 200:
            return
        if code == 404:
            raise NotFound(f"{url}: not found (404)")
        if code in (401, 403):
            host = _host(url)
            hint = "the credentials for it in auth.d were refused" if self.auth.get(host) else \
                "it may need credentials (an auth.d file of kind auth)"
            raise FetchError(f"{url}: access denied ({code}): {hint}")
        raise FetchError(f"{url}: the server answered {status_text(resp)}")

    # -- the ACI and its signature ---------------------------------------------------------

    def download(self, url: str, dest: Path, *, etag: str = "",
                 charge: Callable[[int, str], None] | None = None) -> Answer:
        """GET ``url`` into ``dest`` (``etag``: revalidate, a 304 downloads nothing); a broken
        transfer is resumed where it stopped. ``charge(n, what)`` is told of each piece before it
        is written (an import's budget, which stops a body that never ends)."""
        headers = {"Accept-Encoding": "identity"}
        if etag:
            headers["If-None-Match"] = etag
        responses = [self.send(url, headers)]
        try:
            resp = responses[0]
            now = time.time()
            max_age = parse_max_age(resp.headers.get("cache-control"))
            if resp.status_code == 304 and etag:
                return Answer(304, resp.headers.get("etag", ""), max_age, now)
            self._check(resp, url)
            answer = Answer(200, resp.headers.get("etag", ""), max_age, now)
            with open(dest, "wb") as f:
                self._copy(responses, f, url, answer.etag, charge)
            return answer
        finally:
            for resp in responses:
                resp.close()

    def _copy(self, responses: list[httpx.Response], f: BinaryIO, url: str, etag: str,
              charge: Callable[[int, str], None] | None = None) -> None:
        """Write the body of ``responses[-1]`` into ``f``; when it breaks, ask for the rest
        (``Range``, with ``If-Range`` so a changed file comes whole), appending to ``responses``."""
        import httpx

        resp = responses[-1]
        length = _content_length(resp)
        written = 0
        furthest = 0  # breaks count as failures in a row until a byte beyond this one comes
        failures = 0
        while True:
            try:
                for chunk in resp.iter_bytes():
                    if charge is not None:
                        charge(len(chunk), "the ACI download")
                    f.write(chunk)
                    written += len(chunk)
                    if written > furthest:
                        furthest = written
                        failures = 0
                break
            except httpx.TransportError as e:
                resp.close()
                failures += 1
                if failures >= self.attempts:
                    of = f" of {length}" if length is not None else ""
                    raise FetchError(f"{url}: the download broke at byte {written}{of}: {first_line(e)} "
                                     f"(after {failures} attempts)") from None
            time.sleep(self.backoff * 2 ** (failures - 1))
            resp = self._resume(url, written, etag)
            responses.append(resp)
            if resp.status_code != 206:  # a 200: the whole file again (no ranges, or it changed)
                f.seek(0)
                f.truncate()
                written = 0
                length = _content_length(resp)
        f.flush()
        if length is not None and written < length:
            raise FetchError(f"{url}: the body is shorter than its Content-Length ({written} of {length} bytes)")

    def _resume(self, url: str, offset: int, etag: str) -> httpx.Response:
        """Ask for the rest of ``url`` from ``offset``: a 206 from there, or a 200 of it all."""
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={offset}-"}
        if etag:
            headers["If-Range"] = etag
        resp = self.send(url, headers)
        try:
            if resp.status_code == 206:
                if not resp.headers.get("content-range", "").startswith(f"bytes {offset}-"):
                    raise FetchError(f"{url}: the server resumed the download at the wrong place "
                                     f"({resp.headers.get('content-range')!r} for byte {offset})")
            else:
                self._check(resp, url)
        except BaseException:
            resp.close()
            raise
        return resp

    def download_signature(self, url: str, dest: Path, *, aci_url: str) -> None:
        """GET the armored signature ``url`` into ``dest``; a 202 means "ask again later"."""
        import httpx

        from pyrkt.fetch.trust import SignatureError

        delay = self.backoff
        for attempt in range(1, SIGNATURE_ATTEMPTS + 1):
            resp = self.send(url)
            try:
                if resp.status_code == 202:
                    if attempt == SIGNATURE_ATTEMPTS:
                        raise FetchError(f"{url}: the signature of {aci_url} was still not ready "
                                         f"(202 Accepted, {attempt} times)")
                    time.sleep(min(retry_after(resp) or delay, MAX_WAIT))
                    delay *= 2
                    continue
                if resp.status_code == 404:
                    raise SignatureError(f"signature verification failed: no signature {url} for {aci_url} "
                                         "(404; use --insecure-options=image to skip the check)")
                self._check(resp, url)
                data = b""
                for chunk in resp.iter_bytes():
                    data += chunk
                    if len(data) > SIGNATURE_LIMIT:
                        raise FetchError(f"{url}: a signature larger than {SIGNATURE_LIMIT} bytes")
            except httpx.TransportError as e:
                raise FetchError(f"{url}: {transport_text(e, _host(url))}") from None
            finally:
                resp.close()
            dest.write_bytes(data)
            return


def _auth_headers(config_dirs: Sequence[Path], host: str) -> dict[str, str]:
    from pyrkt.fetch.auth import http_auth_headers

    return http_auth_headers(config_dirs, host)


def _host(url: str) -> str:
    """``host[:port]`` of ``url``, as auth.d names it."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2]


def _content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
