"""appc discovery: image names such as ``example.com/app:v1.0,os=linux,arch=amd64``.

    parse_app_name     the name and the labels asked for (os and arch default to the host's)
    find_stored        the stored image with that name and every label asked for (rkt's GetACI)
    discover           ``GET https://{prefix}?ac-discovery=1`` from the full name up to its host,
                       reading the ``ac-discovery`` and ``ac-discovery-pubkeys`` meta tags
    import_discovered  the store, or discovery + the signing keys (§5.4) + ``https.import_https``
    discover_keys, fetch_key, admit_discovered_key      what ``pyrkt trust --prefix P`` needs too

The network is reached through one small ``get(url) -> (status, body)`` so the walk, the meta
parsing and the template filling are tested without a server.
"""

from __future__ import annotations

import re

from pyrkt.errors import FetchError, ImageError, NotFound, PyrktError, UsageError
from pyrkt.model.image import Image
from pyrkt.model.names import is_ac_identifier
from pyrkt.model.values import Value
from pyrkt.store import Store
from pyrkt.store.lookup import parse_labels

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    import httpx

    from pyrkt.fetch import FetchOptions
    from pyrkt.fetch.aci import Dependency
    from pyrkt.fetch.ui import FetchUI

    Get = Callable[[str], tuple[int, bytes]]

DEFAULT_VERSION = "latest"
PAGE_LIMIT = 1 << 20  # a discovery page or a public key larger than this is refused
_VARIABLE = re.compile(r"\{([^{}]*)\}")
_HOST_ARCH = {"x86_64": "amd64", "i686": "i386", "i586": "i386", "i386": "i386"}


def host_arch() -> str:
    """The appc ``arch`` label of this machine (``amd64`` on x86_64; see ``model.osarch.LINUX_ARCHES``)."""
    import platform

    machine = platform.machine()
    return _HOST_ARCH.get(machine, machine)


class AppName(Value):
    """An image asked for by name: ``labels`` in the order given, then os and arch defaults.
    ``version`` is a label only when asked for; templates fill ``{version}`` with ``latest``."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    def __str__(self) -> str:
        """rkt's form: ``example.com/app:1.0,os=linux,arch=amd64``."""
        version = self.label("version")
        head = f"{self.name}:{version}" if version else self.name
        return ",".join([head, *(f"{k}={v}" for k, v in self.labels if k != "version")])


def parse_app_name(text: str, *, arch: str | None = None) -> AppName:
    """``example.com/app:v1.0,channel=alpha`` -> AppName; a UsageError naming what is wrong."""
    head, *rest = text.strip().split(",")
    name, colon, version = head.partition(":")
    if not is_ac_identifier(name):
        raise UsageError(f"invalid image name {text!r}: {name!r} is not a valid AC Identifier "
                         "(lower case letters, digits and -._~/ between them)")
    labels: dict[str, str] = {}
    if colon:
        if ":" in version:
            raise UsageError(f"invalid image name {text!r}: more than one ':version'")
        labels["version"] = version
    for key, value in parse_labels(text, rest):
        if key in labels:
            raise UsageError(f"invalid image name {text!r}: label {key!r} given twice")
        labels[key] = value
    if labels.get("version") == "":
        raise UsageError(f"invalid image name {text!r}: empty version")
    labels.setdefault("os", "linux")
    labels.setdefault("arch", arch or host_arch())
    return AppName(name, tuple(labels.items()))


def discoverable(text: str) -> bool:
    """Whether a store lookup that found nothing should try appc discovery: the name parses
    and starts with a host (``example.com/…``, ``localhost/…``), unlike Docker Hub short names
    such as ``busybox:latest``. A ``,label=`` makes it appc whatever it is (parse errors show)."""
    if "," in text:
        return True
    name, _, version = text.partition(":")
    if "/" in version or "@" in text:
        return False  # host:port/repo or a digest: a registry reference, not an appc name
    host = name.split("/", 1)[0]
    return is_ac_identifier(name) and ("." in host or host == "localhost")


# -- the store -------------------------------------------------------------------------------


def find_stored(store: Store, app: AppName) -> Image | None:
    """The stored image named ``app.name`` carrying every label asked for, as every command
    looks names up (``store.lookup.choose``: rkt's ``GetACI``; no version asked means any
    version, ``latest`` first, then the newest import)."""
    from pyrkt.store.lookup import Lookup

    labels = tuple((k, v) for k, v in app.labels if k != "version")
    found = store.find_named(Lookup(name=app.name, version=app.label("version"), labels=labels))
    return store.get(found[0]) if found is not None else None


def check_image(app: AppName, image: Image) -> None:
    """The fetched image must be the one asked for: its name and every requested label (rkt's
    validator, with its messages)."""
    if image.name != app.name:
        raise ImageError(f"{app}: error when reading the app name: \"{app.name}\" expected but "
                         f"\"{image.name}\" found")
    have = dict(image.labels)
    for key, value in app.labels:
        if key not in have:
            raise ImageError(f"{app}: requested label \"{key}\" not provided by the image manifest")
        if have[key] != value:
            raise ImageError(f"{app}: requested value for label \"{key}\": \"{value}\" differs from "
                             f"fetched aci label value: \"{have[key]}\"")


# -- discovery (pure parts) ------------------------------------------------------------------


class Meta(Value):
    """One ``<meta name="ac-discovery[-pubkeys]" content="PREFIX URL">`` tag."""

    name: str
    prefix: str
    uri: str


class Endpoint(Value):
    aci: str
    asc: str


class Discovered(Value):
    """What a walk found: ACI endpoints, key URLs, and what was tried (for the error line)."""

    endpoints: tuple[Endpoint, ...] = ()
    keys: tuple[str, ...] = ()
    tried: tuple[str, ...] = ()


def parse_meta(page: str) -> list[Meta]:
    """The ``ac-discovery`` and ``ac-discovery-pubkeys`` meta tags of an HTML page, in order."""
    from html.parser import HTMLParser

    found: list[Meta] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag != "meta":
                return
            values = {k: v or "" for k, v in attrs}
            parts = values.get("content", "").split(None, 1)
            if values.get("name") in ("ac-discovery", "ac-discovery-pubkeys") and len(parts) == 2:
                found.append(Meta(values["name"], parts[0], parts[1].strip()))

    parser = Parser(convert_charrefs=True)
    parser.feed(page)
    parser.close()
    return found


def render_template(template: str, values: dict[str, str]) -> str | None:
    """``template`` with ``{variable}``s filled from ``values``; None if one is left unfilled."""
    out = _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    return None if _VARIABLE.search(out) else out


def template_values(app: AppName) -> dict[str, str]:
    return {**dict(app.labels), "version": app.label("version") or DEFAULT_VERSION, "name": app.name}


def endpoints_of(metas: Iterable[Meta], app: AppName) -> tuple[list[Endpoint], list[str], list[str]]:
    """(ACI endpoints, key URLs, skipped templates) the tags of one page give for ``app``."""
    values = template_values(app)
    endpoints: list[Endpoint] = []
    keys: list[str] = []
    skipped: list[str] = []
    for meta in metas:
        if not app.name.startswith(meta.prefix):
            continue
        if meta.name == "ac-discovery-pubkeys":
            keys.append(meta.uri)
            continue
        aci = render_template(meta.uri, {**values, "ext": "aci"})
        asc = render_template(meta.uri, {**values, "ext": "aci.asc"})
        if aci is None or asc is None:
            skipped.append(meta.uri)
        else:
            endpoints.append(Endpoint(aci, asc))
    return endpoints, keys, skipped


def walk_prefixes(name: str) -> list[str]:
    """``a.com/x/y`` -> ``a.com/x/y``, ``a.com/x``, ``a.com``: where discovery asks, in order."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def discover(app: AppName, get: Get, *, allow_http: bool = False, want: str = "aci") -> Discovered:
    """Walk up ``app``'s name until a page gives an ACI endpoint (``want="aci"``) or a key
    URL (``want="keys"``); a page that fails or has no tag for the name sends it one level up."""
    endpoints: list[Endpoint] = []
    keys: list[str] = []
    tried: list[str] = []
    for prefix in walk_prefixes(app.name):
        url, body, failed = _page(prefix, get, allow_http)
        tried += failed
        if body is None:
            continue
        page_endpoints, page_keys, skipped = endpoints_of(parse_meta(body.decode("utf-8", "replace")), app)
        endpoints += page_endpoints
        keys += page_keys
        enough = endpoints if want == "aci" else keys
        if enough:
            break
        what = "ac-discovery" if want == "aci" else "ac-discovery-pubkeys"
        note = f" (templates with unfilled variables: {', '.join(skipped)})" if skipped else ""
        tried.append(f"{url}: no {what} meta tag for {app.name}{note}")
    return Discovered(tuple(endpoints), tuple(keys), tuple(tried))


def _page(prefix: str, get: Get, allow_http: bool) -> tuple[str, bytes | None, list[str]]:
    """(the URL that gave a page, the page), or ("", None); and a line for each URL that did
    not, in the order asked: https, then http if allowed and https failed."""
    failed: list[str] = []
    for scheme in ("https", "http") if allow_http else ("https",):
        url = f"{scheme}://{prefix}?ac-discovery=1"
        try:
            status, body = get(url)
        except FetchError as e:
            text = str(e)  # the transport's lines start with the URL; a refused redirect's does not
            failed.append(text if text.startswith(f"{url}: ") else f"{url}: {text}")
            continue
        if status == 200:
            return url, body, failed
        failed.append(f"{url}: answered {status}")
    return "", None, failed


# -- the network -----------------------------------------------------------------------------


class Web:
    """GETs for discovery pages and keys through the transport: each asked once (a page that
    fails sends the walk one level up), redirects followed, TLS checked unless
    ``--insecure-options=tls``, no https -> http redirect unless ``http``, credentials from the
    ``auth`` config on a 401. ``transport`` is for tests."""

    def __init__(self, insecure: frozenset[str], config_dirs: Sequence[Path] = (),
                 transport: httpx.BaseTransport | None = None) -> None:
        from pyrkt.fetch.transport import Transport

        self.config_dirs = tuple(config_dirs)
        self.web = Transport(insecure=insecure, transport=transport)

    def __enter__(self) -> Web:
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.close()

    def get(self, url: str) -> tuple[int, bytes]:
        """(status, body): the body of a 200 only, at most ``PAGE_LIMIT`` bytes."""
        from pyrkt.fetch.transport import read_limited

        resp = self.web.send("GET", url, what=url, retry=False, on_401=self._on_401)
        try:
            if resp.status_code != 200:
                return resp.status_code, b""
            return 200, read_limited(resp, what=url, limit=PAGE_LIMIT, too_large=f"larger than {PAGE_LIMIT} bytes")
        finally:
            resp.close()

    def _on_401(self, resp: httpx.Response) -> bool:
        """rkt's ``auth`` kind for the URL's host (with its port, if the URL has one)."""
        from pyrkt.fetch.auth import http_auth_headers
        from pyrkt.fetch.transport import host_of

        host = host_of(str(resp.request.url))
        header = http_auth_headers(self.config_dirs, host).get("Authorization")
        self.web.authorize(host, header)
        return header is not None


# -- keys --------------------------------------------------------------------------------------


def discover_keys(prefix: str, get: Get, *, allow_http: bool = False) -> list[str]:
    """The ``ac-discovery-pubkeys`` URLs for ``prefix`` (``pyrkt trust --prefix``)."""
    found = discover(AppName(prefix), get, allow_http=allow_http, want="keys")
    if not found.keys:
        raise FetchError(f"discovery of keys for prefix {prefix!r} failed: {'; '.join(found.tried)}")
    return list(found.keys)


def fetch_key(url: str, get: Get, *, allow_http: bool = False) -> bytes:
    """The armored public key at ``url`` (https; http only if allowed)."""
    if url.startswith("http://") and not allow_http:
        raise FetchError(f"refusing to fetch the key {url} over plain http (fetch: --insecure-options=http,pubkey; "
                         "trust: --insecure-allow-http)")
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"refusing to fetch the key {url}: only https URLs are supported")
    status, body = get(url)
    if status != 200:
        raise FetchError(f"cannot fetch the key {url}: answered {status}")
    return body


def admit_discovered_key(local_dir: Path, url: str, data: bytes, prefix: str | None, *, ui: FetchUI, review: bool = True,
                         trust_https: bool = False) -> tuple[str, Path | None]:
    """(fingerprint, where it is stored or None when declined) of the key fetched from ``url``,
    offered for ``prefix`` (None: as a root key) through ``fetch.trust.admit_key``."""
    from pyrkt.fetch.trust import admit_key, key_fingerprint

    with _keyfile(data) as path:
        try:
            fingerprint, uid = key_fingerprint(path)
        except FetchError as e:
            raise FetchError(f"the key at {url}: " + str(e).replace(repr(str(path)), "it")) from None
        return fingerprint, admit_key(local_dir, path, origin=url, fingerprint=fingerprint, uid=uid, prefix=prefix,
                                      ui=ui, review=review, trust_https=trust_https)


class _keyfile:
    """The key bytes as a temporary file, for gpg and the keystore."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __enter__(self) -> Path:
        import tempfile
        from pathlib import Path

        self.dir = tempfile.TemporaryDirectory(prefix="pyrkt-key-")
        path = Path(self.dir.name) / "key.asc"
        path.write_bytes(self.data)
        return path

    def __exit__(self, *exc: object) -> None:
        self.dir.cleanup()


# -- fetching by name --------------------------------------------------------------------------


def import_discovered(store: Store, name: str, *, source: str, options: FetchOptions) -> Image:
    """The image ``name`` (with ``:version`` and ``,label=value``s) names: from the store as
    the pull policy says, else discovered, its signing keys trusted if none is yet
    (``--trust-keys-from-https``, or a question through ``options.ui``), and fetched with its
    signature by ``https.import_https``; the fetched image must match."""
    from pyrkt.fetch.policy import use_stored

    app = parse_app_name(name)
    stored = use_stored(options.pull_policy, find_stored(store, app) if options.pull_policy != "update" else None,
                        what=source)
    if stored is not None:
        options.ui.debug(f"using image from local store for image name {name}")
        from pyrkt.fetch.https import unchecked_signature

        unchecked_signature(options, name, stored)
        return stored
    allow_http = "http" in options.insecure
    options.ui.status(f"searching for app image {app.name}")
    with Web(options.insecure, options.dirs.paths()) as web:
        found = discover(app, web.get, allow_http=allow_http)
        if not found.endpoints:
            raise FetchError(f"discovery failed for {str(app)!r}: {'; '.join(found.tried)}")
        if "image" not in options.insecure:
            _ensure_keys(app, found, web, options)
    endpoint = found.endpoints[0]
    options.ui.status(f"remote fetching from URL {endpoint.aci!r}")
    from pyrkt.fetch.https import import_https

    return import_https(store, endpoint.aci, source=endpoint.aci, options=options, signature_url=endpoint.asc,
                        check=lambda image: check_image(app, image))


def _ensure_keys(app: AppName, found: Discovered, web: Web, options: FetchOptions) -> None:
    """rkt's maybeFetchPubKeys: no key trusted for the name yet -> discover and trust its keys."""
    from pathlib import Path

    from pyrkt.fetch.trust import SignatureError, keyring_files

    local = Path(options.dirs.local)
    if keyring_files(Path(options.dirs.system), local, app.name):
        return
    hint = f"trust one with pyrkt trust --prefix={app.name} or fetch with --trust-keys-from-https"
    if "tls" in options.insecure and "pubkey" not in options.insecure:
        raise SignatureError(f"no keys are trusted for {app.name!r} and keys are not fetched without TLS "
                             f"verification ({hint})")
    allow_http = "http" in options.insecure and "pubkey" in options.insecure
    if not found.keys:
        found = discover(app, web.get, allow_http="http" in options.insecure, want="keys")
    keys = list(found.keys)
    if not keys:
        raise SignatureError(f"no keys are trusted for {app.name!r} and discovery found none "
                             f"({'; '.join(found.tried)}); add one with pyrkt trust --prefix")
    trusted = 0
    for url in keys:
        force = options.trust_keys_from_https and url.startswith("https://")
        if not force and not options.ui.can_ask():
            raise SignatureError(f"no keys are trusted for {app.name!r} and stdin is not a terminal to ask "
                                 f"whether to trust {url} ({hint})")
        data = fetch_key(url, web.get, allow_http=allow_http)
        _, path = admit_discovered_key(local, url, data, app.name, ui=options.ui,
                                       trust_https=options.trust_keys_from_https)
        if path is not None:
            trusted += 1
    if not trusted:
        raise SignatureError(f"no keys are trusted for {app.name!r}: the discovered keys were declined")


def dependency_resolver(store: Store, options: FetchOptions) -> Callable[[Dependency], Image]:
    """How an ACI's dependencies are found, as rkt: a stored image matching the dependency's
    name, labels and imageID, else appc discovery of ``name:version,label=value`` (fetched with
    the same options, pull policy ``new``: a dependency stored meanwhile is not fetched again)."""
    from pyrkt.fetch.aci import find_dependency

    def resolve(dep: Dependency) -> Image:
        try:
            return find_dependency(store, dep, needed_by=dep.name)
        except NotFound:
            if not discoverable(dep.display):
                raise NotFound(f"dependency {dep.display} is not in the store and is not a name appc "
                               "discovery can look up") from None
        try:
            return import_discovered(store, dep.display, source=dep.display,
                                     options=options.replace(pull_policy="new", signature=None))
        except PyrktError as e:
            e.message = f"dependency {dep.display}: {e.message}"
            raise

    return resolve
