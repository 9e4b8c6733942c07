"""``docker://`` images: a client of the Docker Registry HTTP API v2 / OCI distribution spec.

``import_registry(store, ref, ...)`` asks the registry for the manifest of ``ref`` (an index or
manifest list is narrowed to the host's platform, or to ``platform``), then fetches the config
and every layer the store does not hold yet, in parallel, each verified against its digest by
the store's import session before anything is committed. New layers are unpacked while they
download, a process each, fed a copy of the bytes as they are staged (``ImportSession.
stream_layers``); a ``progress`` sink (progress.py) hears of every layer's bytes as they
arrive, from the download threads.

Auth: ``GET /v2/`` tells which challenge the registry wants; a bearer token is asked of the
realm (with the user's credentials if there are any) for ``repository:<name>:pull``, or HTTP
basic is sent. An identity token (an OAuth2 refresh token) is traded for the bearer token by a
form ``POST`` to the realm (``grant_type=refresh_token``), never sent to the registry itself.
https only, unless ``--insecure-options=http`` (then https is tried first); ``tls`` skips
certificate checks. 429, 5xx and broken connections are retried with backoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import IO, Any, cast

import httpx

from pyrkt.errors import AccessDenied, FetchError, ImageError, IntegrityError
from pyrkt.fetch.auth import Credentials, parse_challenge
from pyrkt.fetch.convert import check_config, diff_ids, image_from_config
from pyrkt.fetch.manifests import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_DOCKER_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    check_platform,
    choose_platform,
    load_json,
    parse_manifest,
)
from pyrkt.fetch.progress import ProgressSink
from pyrkt.fetch.reference import Reference
from pyrkt.fetch.transport import ATTEMPTS, Cancelled, Download, Transport, status_text
from pyrkt.model.image import Image
from pyrkt.store import Store
from pyrkt.store.imports import ImportSession
from pyrkt.store.parallel import BlobFeed

BACKOFF = 0.5          # seconds before the second try; doubled for each next one
WORKERS = 4            # layers downloaded at once
MANIFEST_LIMIT = 4 << 20
MAX_INDEX_DEPTH = 4
MANIFEST_ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
OAUTH_CLIENT_ID = "pyrkt"  # the client_id of an OAuth2 token request


def _token_answer(resp: httpx.Response, what: str, refusals: dict[int, str]) -> dict[str, Any]:
    """The token service's JSON answer (closed after reading); ``refusals``: the line to raise
    for a status that means the credentials were refused, by status."""
    try:
        if resp.status_code in refusals:
            status = resp.status_code if resp.status_code in (401, 403) else 401  # 400: OAuth2's invalid_grant
            raise (AccessDenied(refusals[resp.status_code], status) if resp.status_code in (400, 401, 403)
                   else FetchError(refusals[resp.status_code]))
        if resp.status_code != 200:
            raise FetchError(f"{what}: the token service answered {status_text(resp)}")
        data = load_json(resp.content[:MANIFEST_LIMIT], f"{what}: token service answer")
    finally:
        resp.close()
    return data if isinstance(data, dict) else {}


class RegistryClient:
    """One repository of one registry: its base URL, auth state and the transport under it."""

    def __init__(self, ref: Reference, *, insecure: frozenset[str] = frozenset(),
                 credentials: Credentials | None = None, attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.registry = ref.registry
        self.repository = ref.repository
        self.where = f"{ref.registry}/{ref.repository}"
        self.allow_http = "http" in insecure
        self.credentials = credentials
        self.base = f"https://{ref.registry}"
        self.web = Transport(insecure=insecure, peer="the registry", attempts=attempts, backoff=backoff,
                             plain_http_hint=" (a plain-http registry needs --insecure-options=http)",
                             transport=transport)
        self.cancel = self.web.cancel

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.close()

    # -- requests --------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: pick https or (when allowed) http, and authenticate as asked."""
        if self.allow_http:
            https = self.web.probe(f"https://{self.registry}/v2/", what=self.where)
            self.base = f"{'https' if https else 'http'}://{self.registry}"
        resp = self._send("GET", "/v2/", what=self.where, authenticate=False)
        resp.close()
        if resp.status_code == 401:
            self._authenticate(resp.headers.get("www-authenticate"), self.where)
        elif resp.status_code == 404:
            raise FetchError(f"{self.where}: {self.registry} is not a Docker registry (no /v2/ API: 404)")
        elif resp.status_code >= 400:
            raise FetchError(f"{self.where}: the registry answered {status_text(resp)} to /v2/")

    def _send(self, method: str, path: str, *, what: str, headers: dict[str, str] | None = None,
              stream: bool = False, authenticate: bool = True, content: bytes | None = None) -> httpx.Response:
        """One request through the transport; a 401 re-authenticates once (``authenticate``)."""
        url = path if path.startswith(("https://", "http://")) else self.base + path
        return self.web.send(method, url, what=what, headers=headers, stream=stream, content=content,
                             on_401=self._on_401(what) if authenticate else None)

    def _on_401(self, what: str) -> Callable[[httpx.Response], bool]:
        def answer(resp: httpx.Response) -> bool:
            self._authenticate(resp.headers.get("www-authenticate"), what)
            return True

        return answer

    def _authenticate(self, header: str | None, what: str) -> None:
        if not header:
            raise AccessDenied(f"{what}: access denied (401) and the registry sent no authentication challenge")
        scheme, params = parse_challenge(header)
        creds = self.credentials
        if scheme == "basic":
            if creds is None:
                raise AccessDenied(f"{what}: the registry needs a user name and password (401); put them in "
                                 "~/.docker/config.json or an auth.d dockerAuth file")
            if creds.identity_token and not creds.password:
                raise FetchError(f"{what}: {self.registry} asks for HTTP basic auth, which cannot use "
                                 f"{creds.describe()} (it needs a user name and password)")
            value = creds.basic_header()
            if self.web.authorized(self.registry) == value:
                raise AccessDenied(f"{what}: the registry refused the credentials of user {creds.user!r} "
                                 f"from {creds.origin} (401)")
            self.web.authorize(self.registry, value)
            return
        if scheme != "bearer":
            raise FetchError(f"{what}: unsupported authentication scheme {scheme!r} (want Bearer or Basic)")
        realm = params.get("realm")
        if not realm:
            raise FetchError(f"{what}: the registry's Bearer challenge has no realm")
        if not realm.startswith("https://") and not (realm.startswith("http://") and self.allow_http):
            raise FetchError(f"{what}: the token service {realm} is not https (allow with --insecure-options=http)")
        scopes = [f"repository:{self.repository}:pull"]
        if creds is not None and creds.identity_token:
            token = self._oauth_token(realm, params.get("service", ""), scopes, what, creds)
        else:
            query = {"scope": " ".join(scopes)}
            if params.get("service"):
                query["service"] = params["service"]
            headers = {}
            if creds is not None:
                query["account"] = creds.user
                headers["Authorization"] = creds.basic_header()
            url = str(httpx.URL(realm, params=query))
            token = self._token(url, headers, what, creds)
        self.web.authorize(self.registry, f"Bearer {token}")

    def _token(self, url: str, headers: dict[str, str], what: str, creds: Credentials | None) -> str:
        resp = self._send("GET", url, what=f"{what}: token service", headers=headers, authenticate=False)
        refused = (f"the credentials of user {creds.user!r} from {creds.origin}" if creds is not None
                   else "an anonymous token")
        data = _token_answer(resp, what, {code: f"{what}: the token service refused {refused} ({code})"
                                          for code in (401, 403)})
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise FetchError(f"{what}: the token service answered without a token")
        return token

    def _oauth_token(self, realm: str, service: str, scopes: list[str], what: str, creds: Credentials) -> str:
        """The access token the realm gives for the identity token (the OAuth2 refresh-token grant,
        Docker's token spec): neither the identity token nor the answer ever goes into a message."""
        from urllib.parse import urlencode

        form = urlencode({"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                          "service": service, "scope": " ".join(scopes), "client_id": OAUTH_CLIENT_ID})
        resp = self._send("POST", realm, what=f"{what}: token service", authenticate=False, content=form.encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        refusals = {code: f"{what}: the token service refused {creds.describe()} ({code})"
                    for code in (400, 401, 403)}  # 400: OAuth2's invalid_grant
        refusals.update({code: f"{what}: the token service {realm} does not take identity tokens (its OAuth2 "
                               f"POST answered {status_text(resp)})" for code in (404, 405)})
        data = _token_answer(resp, what, refusals)
        token = data.get("access_token") or data.get("token")
        if not isinstance(token, str) or not token:
            raise FetchError(f"{what}: the token service answered without an access_token")
        refresh = data.get("refresh_token")
        if isinstance(refresh, str) and refresh and refresh != creds.identity_token:
            # a rotated refresh token: the next token of this pull is asked with it (kept in memory only)
            self.credentials = Credentials(creds.user, creds.password, creds.origin, refresh)
        return token

    # -- manifests and blobs ---------------------------------------------------------------

    def manifest(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """(bytes, media type, Docker-Content-Digest) of the manifest ``ref`` (tag or digest)."""
        what = f"{self.where}: manifest {ref}"
        resp = self._send("GET", f"/v2/{self.repository}/manifests/{ref}", what=what,
                          headers={"Accept": MANIFEST_ACCEPT})
        try:
            self._check(resp, what)
            if int(resp.headers.get("content-length") or 0) > MANIFEST_LIMIT or len(resp.content) > MANIFEST_LIMIT:
                raise ImageError(f"{what} is larger than {MANIFEST_LIMIT} bytes")
            media_type = resp.headers.get("content-type", "").split(";")[0].strip() or None
            return resp.content, media_type, resp.headers.get("docker-content-digest")
        finally:
            resp.close()

    def fetch_blob(self, imp: ImportSession, desc: Descriptor, what: str,
                   progress: ProgressSink | None = None, feed: BlobFeed | None = None) -> None:
        """Stage the blob ``desc`` names into ``imp``, verified; a broken transfer is resumed.
        ``progress`` hears of the bytes as they come and of the blob once it is verified;
        ``feed`` (``ImportSession.stream_layers``) gets every byte staged, and is closed."""
        on_bytes = None
        if progress is not None:
            def on_bytes(n: int) -> None:
                progress.advance(desc.digest, n)
        body = _Body(self, f"/v2/{self.repository}/blobs/{desc.digest}", what, on_bytes, feed)
        try:
            imp.add_blob(cast(IO[bytes], body), expected=desc.digest, size=desc.size, what=what)
        finally:
            body.close()
            if feed is not None:
                feed.close()
        if progress is not None:
            progress.finish(desc.digest)

    def fetch_blobs(self, imp: ImportSession, items: list[tuple[Descriptor, str]],
                    progress: ProgressSink | None = None, feeds: dict[str, BlobFeed] | None = None) -> None:
        """``fetch_blob`` for each (descriptor, what), ``WORKERS`` at a time; the first error wins.
        ``feeds``: blob digest -> where that blob's bytes also go (see ``fetch_blob``)."""
        feeds = feeds or {}
        if progress is not None:
            for desc, _ in items:
                progress.add(desc.digest, desc.size)
        if len(items) <= 1:
            for desc, what in items:
                self.fetch_blob(imp, desc, what, progress, feeds.get(desc.digest))
            return
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)), thread_name_prefix="pyrkt-fetch") as pool:
            futures = [pool.submit(self.fetch_blob, imp, desc, what, progress, feeds.get(desc.digest))
                       for desc, what in items]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
                for f in futures:
                    if f.done() and not f.cancelled() and f.exception() is not None:
                        raise _first_error(futures)
                for f in futures:
                    f.result()
            except BaseException:
                self.cancel.set()
                for f in futures:
                    f.cancel()
                raise

    def _check(self, resp: httpx.Response, what: str) -> None:
        denied = "the image does not exist or needs credentials" if self.credentials is None else \
            f"user {self.credentials.user!r} may not pull it"
        self.web.check(resp, what, not_found="not found in the registry", denied=denied)


def _first_error(futures: list[Future[None]]) -> BaseException:
    errors = [e for f in futures if f.done() and not f.cancelled() and (e := f.exception()) is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    return (real or errors)[0]


class _Body:
    """A blob's body as a ``read(n)`` stream for the store's verifying copy: the transport's
    ``Download`` (resumed across breaks; a blob named by its digest cannot change, so a server
    ignoring the range has what was read already skipped), and the bytes told to ``on_bytes``
    and copied to ``feed`` as they are handed on."""

    def __init__(self, client: RegistryClient, path: str, what: str,
                 on_bytes: Callable[[int], None] | None = None, feed: BlobFeed | None = None) -> None:
        self.on_bytes = on_bytes
        self.feed = feed
        self.buf = b""
        self.download = Download(client.web, client.base + path, what=what,
                                 check=lambda resp: client._check(resp, what), name_host=True,
                                 on_401=client._on_401(what))
        self.chunks = self.download.chunks()

    def close(self) -> None:
        self.download.close()

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            out = self.buf + b"".join(self.chunks)
            self.buf = b""
        else:
            if not self.buf:
                self.buf = next(self.chunks, b"")
            out, self.buf = self.buf[:n], self.buf[n:]
        if out:
            if self.feed is not None:
                self.feed.write(out)
            if self.on_bytes is not None:
                self.on_bytes(len(out))
        return out


# -- the import ------------------------------------------------------------------------------


def import_registry(store: Store, ref: Reference, *, source: str, insecure: frozenset[str] = frozenset(),
                    credentials: Credentials | None = None, platform: Platform | None = None,
                    progress: ProgressSink | None = None, client: RegistryClient | None = None) -> Image:
    """Fetch ``ref`` into ``store`` (layers it holds are not downloaded); returns the stored Image.

    ``platform``: the one to choose from an index (default: the host's); a single image for
    another platform is refused when one is given. ``progress`` hears of the layer downloads.
    ``client`` is for tests (a client on a mock transport); by default one is made for ``ref``.
    """
    try:
        with client or RegistryClient(ref, insecure=insecure, credentials=credentials) as client:
            client.ping()
            with store.begin_import(source) as imp:
                digest, manifest = _resolve_manifest(client, imp, ref, platform)
                where = client.where
                what = f"{where}: config {manifest.config.digest}"
                if not imp.has_blob(manifest.config.digest):
                    client.fetch_blob(imp, manifest.config, what)
                config = load_json(imp.read_blob(manifest.config.digest), what)
                if not isinstance(config, dict):
                    raise ImageError(f"{what} is not a JSON object")
                check_config(config, what)  # before any layer is downloaded
                check_platform(config, platform, f"{where}: manifest {digest}")
                ids = diff_ids(config, what)
                if len(ids) != len(manifest.layers):
                    raise ImageError(f"{where}: manifest {digest} has {len(manifest.layers)} layers but its "
                                     f"config lists {len(ids)} diff ids")
                wanted: dict[str, tuple[Descriptor, str]] = {}
                for desc in manifest.layers:
                    if desc.digest not in wanted and not imp.has_blob(desc.digest):
                        wanted[desc.digest] = (desc, f"{where}: layer {desc.digest}")
                layers = [(desc.digest, diff_id, desc.media_type)
                          for desc, diff_id in zip(manifest.layers, ids, strict=True)]
                # unpack while downloading: the unpacking processes start before the download threads
                fetched = sorted((layer for layer in layers if layer[0] in wanted),
                                 key=lambda layer: wanted[layer[0]][0].size, reverse=True)
                feeds = imp.stream_layers(fetched)
                client.fetch_blobs(imp, list(wanted.values()), progress, feeds)
                imp.add_layers(layers)
                fmt = "docker" if manifest.media_type == MT_DOCKER_MANIFEST else "oci"
                tag = ref.tag if ref.tag and not ref.digest else ""
                image = image_from_config(config, image_id=manifest.config.digest, name=ref.name, tag=tag,
                                          fmt=fmt, manifest_digest=digest, what=what)
                imp.commit(image, manifest_digest=digest, manifest_media_type=manifest.media_type,
                           config_digest=manifest.config.digest, name=ref.name, version=tag)
        return image
    except Cancelled:
        raise FetchError(f"{ref.registry}/{ref.repository}: fetch cancelled") from None


def _resolve_manifest(client: RegistryClient, imp: ImportSession, ref: Reference,
                      platform: Platform | None) -> tuple[str, Manifest]:
    """(digest, manifest) of ``ref``: its index narrowed to one platform; each manifest staged."""
    wanted, media_type, size = ref.digest, None, None
    target = ref.ref
    for _ in range(MAX_INDEX_DEPTH):
        what = f"{client.where}: manifest {target}"
        data, served_type, served_digest = client.manifest(target)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if wanted is not None and digest != wanted:
            raise IntegrityError(f"{what}: digest mismatch: expected {wanted}, got {digest}")
        if served_digest and served_digest.startswith("sha256:") and served_digest != digest:
            raise IntegrityError(f"{what}: digest mismatch: the registry says {served_digest}, the bytes are {digest}")
        if size is not None and len(data) != size:
            raise IntegrityError(f"{what}: size mismatch: expected {size} bytes, got {len(data)}")
        what = f"{client.where}: manifest {digest}"
        imp.add_bytes(data, expected=digest, what=what)
        parsed = parse_manifest(data, what, media_type or served_type)
        if isinstance(parsed, Index):
            desc = choose_platform(parsed, what, platform)
            wanted, media_type, size, target = desc.digest, desc.media_type, desc.size, desc.digest
            continue
        return digest, parsed
    raise ImageError(f"{client.where}: image indexes nested more than {MAX_INDEX_DEPTH} deep")
