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
from pyrkt.fetch.transport import ATTEMPTS, host_of
from pyrkt.model.image import Image
from pyrkt.model.values import Value
from pyrkt.store import Store
from pyrkt.store.remotes import Remote, RemoteCache, parse_max_age

# httpx, ssl and gpg are loaded only when something is downloaded: `run` of a cached image
# decides from the cache record alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import httpx

    from pyrkt.fetch import FetchOptions

BACKOFF = 0.25            # seconds before the second try; doubled for each next one
SIGNATURE_ATTEMPTS = 5    # asks for a signature that answers 202 Accepted ("deferred")
SIGNATURE_LIMIT = 1 << 20


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
    from pyrkt.fetch.policy import use_stored

    cache = RemoteCache(store.root)
    remote = cache.get(url)
    cached = _stored(store, remote)
    reuse = use_stored(options.pull_policy, cached, what=url, fresh=remote is not None and remote.is_fresh())
    if reuse is not None:
        options.ui.debug(f"using image from local store for url {url}" if options.pull_policy != "update"
                         else f"image for {url} isn't expired, not fetching.")
        unchecked_signature(options, url, reuse)
        return _checked(reuse, check)

    verify = "image" not in options.insecure
    sig_url = signature_url or url + ".asc"
    check_url(url, options.insecure)
    if verify and not options.signature:
        check_url(sig_url, options.insecure)
    options.ui.debug(f"fetching image from {url}")
    with client or HttpClient(insecure=options.insecure, config_dirs=options.dirs.paths()) as http, \
            store.begin_import(source) as staging:  # only its temp dir and lock: import_aci commits
        aci = staging.dir / "image.aci"
        etag = remote.etag if cached is not None and remote is not None else ""
        answer = http.download(url, aci, etag=etag, charge=staging.budget.charge)
        if answer.status == 304:
            assert cached is not None and remote is not None
            cache.put(remote.replace(etag=answer.etag or remote.etag, max_age=answer.max_age,
                                     download_time=answer.time))
            unchecked_signature(options, url, cached)
            return _checked(cached, check)
        sig = staging.dir / "image.aci.asc"
        if verify and options.signature:  # --signature: the local file, as rkt's, instead of the URL's
            sig = options.signature
        elif verify:
            http.download_signature(sig_url, sig, aci_url=url)
        image = _import(store, aci, sig, source=source, verify=verify, options=options, check=check,
                        shown={str(aci): url, str(staging.dir / "image.aci.asc"): sig_url})
    cache.put(Remote(url=url, image_id=image.id, signature_url=sig_url if verify and not options.signature else "",
                     etag=answer.etag, max_age=answer.max_age, download_time=answer.time))
    return image


def unchecked_signature(options: FetchOptions, url: str, image: Image) -> None:
    """A ``--signature`` file not checked, since the image the URL gave before is reused: said."""
    if options.signature:
        options.ui.notice(f"warning: --signature {options.signature} for {url} was not checked: the image "
                          f"{image.id} was taken from the store, not fetched")


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

    try:
        return import_aci(store, aci, source=source, signature=sig, verify=verify, dirs=options.dirs,
                          check=check, resolve_dependency=dependency_resolver(store, options))
    except SignatureError as e:
        message = e.message
        for path, url in shown.items():
            message = message.replace(repr(path), url).replace(path, url)
        raise SignatureError(message) from None


# -- HTTP ---------------------------------------------------------------------------------------


class HttpClient:
    """ACI and signature downloads through the transport; a 401 is answered once per host with
    the ``auth.d`` headers for it, if there are any."""

    def __init__(self, *, insecure: frozenset[str] = frozenset(), config_dirs: Sequence[Path] = (),
                 attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 transport: httpx.BaseTransport | None = None) -> None:
        from pyrkt.fetch.transport import Transport

        self.config_dirs = tuple(config_dirs)
        self.web = Transport(insecure=insecure, attempts=attempts, backoff=backoff, transport=transport)
        self.asked: set[str] = set()  # hosts whose 401 was answered with auth.d

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.close()

    def send(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A streamed GET, retried on 429, 5xx and broken connections."""
        return self.web.send("GET", url, what=url, headers=headers, on_401=self._on_401)

    def _on_401(self, resp: httpx.Response) -> bool:
        host = host_of(str(resp.request.url))
        if host in self.asked:
            return False
        self.asked.add(host)
        header = _auth_headers(self.config_dirs, host).get("Authorization")
        self.web.authorize(host, header)
        return header is not None

    def _check(self, resp: httpx.Response, url: str) -> None:
        denied = "the credentials for it in auth.d were refused" if self.web.authorized(host_of(url)) else \
            "it may need credentials (an auth.d file of kind auth)"
        self.web.check(resp, url, not_found="not found", denied=denied)

    # -- the ACI and its signature ---------------------------------------------------------

    def download(self, url: str, dest: Path, *, etag: str = "",
                 charge: Callable[[int, str], None] | None = None) -> Answer:
        """GET ``url`` into ``dest`` (``etag``: revalidate, a 304 downloads nothing); a broken
        transfer is resumed where it stopped, or started again if the file changed meanwhile.
        ``charge(n, what)`` is told of each piece before it is written (an import's budget, which
        stops a body that never ends)."""
        from pyrkt.fetch.transport import Download

        headers = {"Accept-Encoding": "identity"}
        resp = self.send(url, {**headers, "If-None-Match": etag} if etag else headers)
        try:
            now = time.time()
            max_age = parse_max_age(resp.headers.get("cache-control"))
            if resp.status_code == 304 and etag:
                resp.close()
                return Answer(304, resp.headers.get("etag", ""), max_age, now)
            answer = Answer(200, resp.headers.get("etag", ""), max_age, now)
        except BaseException:
            resp.close()
            raise
        with open(dest, "wb") as f:
            def restart() -> None:
                f.seek(0)
                f.truncate()

            with Download(self.web, url, what=url, first=resp, check=lambda r: self._check(r, url),
                          restart=restart, on_401=self._on_401) as body:
                for chunk in body.chunks():
                    if charge is not None:
                        charge(len(chunk), "the ACI download")
                    f.write(chunk)
            if body.length is not None and body.offset < body.length:
                raise FetchError(f"{url}: the body is shorter than its Content-Length "
                                 f"({body.offset} of {body.length} bytes)")
        return answer

    def download_signature(self, url: str, dest: Path, *, aci_url: str) -> None:
        """GET the armored signature ``url`` into ``dest``; a 202 means "ask again later"."""
        from pyrkt.fetch.transport import read_limited
        from pyrkt.fetch.trust import SignatureError

        for attempt in range(1, SIGNATURE_ATTEMPTS + 1):
            resp = self.send(url)
            try:
                if resp.status_code == 202:
                    if attempt == SIGNATURE_ATTEMPTS:
                        raise FetchError(f"{url}: the signature of {aci_url} was still not ready "
                                         f"(202 Accepted, {attempt} times)")
                    self.web.sleep(self.web.delay(attempt, resp))
                    continue
                if resp.status_code == 404:
                    raise SignatureError(f"signature verification failed: no signature {url} for {aci_url} "
                                         "(404; use --insecure-options=image to skip the check)")
                self._check(resp, url)
                data = read_limited(resp, what=url, limit=SIGNATURE_LIMIT,
                                    too_large=f"a signature larger than {SIGNATURE_LIMIT} bytes")
            finally:
                resp.close()
            dest.write_bytes(data)
            return


def _auth_headers(config_dirs: Sequence[Path], host: str) -> dict[str, str]:
    from pyrkt.fetch.auth import http_auth_headers

    return http_auth_headers(config_dirs, host)
