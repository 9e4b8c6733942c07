"""appc discovery without a server: names and labels, meta tags, templates, the walk up the
name (through a fake ``get``), the label check and the store lookup by name and labels."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.support.aci import aci_manifest, appc_arch, build_aci

from pyrkt.config import Config
from pyrkt.errors import FetchError, ImageError, NotFound, UsageError
from pyrkt.fetch import FetchOptions, fetch
from pyrkt.fetch.discovery import (
    AppName,
    Endpoint,
    Meta,
    Web,
    check_image,
    discover,
    discoverable,
    endpoints_of,
    find_stored,
    host_arch,
    import_discovered,
    parse_app_name,
    parse_meta,
    render_template,
    walk_prefixes,
)
from pyrkt.fetch.trust import spaced_fingerprint
from pyrkt.model.image import Image
from pyrkt.stage0.images import resolve_image
from pyrkt.store import Store

ARCH = appc_arch()


# -- names -------------------------------------------------------------------------------------


def test_name_with_version_and_labels_gets_os_and_arch_defaults() -> None:
    app = parse_app_name("example.com/app:v1.0,channel=alpha")
    assert app == AppName("example.com/app", (("version", "v1.0"), ("channel", "alpha"), ("os", "linux"),
                                              ("arch", ARCH)))
    assert host_arch() == ARCH
    assert parse_app_name("example.com/app,os=linux,arch=armv7l").labels == (("os", "linux"), ("arch", "armv7l"))
    assert parse_app_name("example.com/app").label("version") is None
    assert str(parse_app_name("example.com/app:v1.0,channel=alpha", arch="s390x")) == \
        "example.com/app:v1.0,channel=alpha,os=linux,arch=s390x"


@pytest.mark.parametrize(("text", "why"), [
    ("Example.com/app", "'Example.com/app' is not a valid AC Identifier"),
    ("example.com/app:1:2", "more than one ':version'"),
    ("example.com/app,os", "label 'os' has no value"),
    ("example.com/app,Os=linux", "label name 'Os' is not a valid AC Identifier"),
    ("example.com/app:1.0,version=2.0", "label 'version' given twice"),
    ("example.com/app,name=x", "'name' is not a label"),
    ("example.com/app:", "empty version"),
])
def test_bad_names_are_one_line_usage_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_app_name(text)
    assert why in str(e.value) and repr(text) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("localhost/app", True), ("example.com/app:1.0.0", True), ("example.com/app,os=linux", True),
    ("a,b=c", True),  # a label makes it appc; its parse error then shows
    ("busybox", False), ("busybox:latest", False), ("library/nginx:1", False),
    ("registry.example.com:5000/repo", False), ("localhost:5000/app", False),
    ("example.com/app@sha256:" + "a" * 64, False), ("sha512-0123abcd", False), ("0123abcd", False),
])
def test_only_names_starting_with_a_host_go_to_discovery(text: str, expected: bool) -> None:
    assert discoverable(text) is expected


# -- pages and templates ------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head>
<meta charset="utf-8">
<meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com/app   https://example.com/pubkeys.gpg" />
<meta name="ac-discovery" content="other.org https://other.org/{name}.{ext}">
<meta name="ac-discovery" content="broken">
<meta name="description" content="example.com not-a-tag">
</head><body><meta name="ac-discovery" content="example.com/app https://mirror/{name}-{channel}.{ext}"></body></html>"""


def test_meta_tags_are_read_in_order_and_others_ignored() -> None:
    assert parse_meta(PAGE) == [
        Meta("ac-discovery", "example.com", "https://example.com/{name}-{version}-{os}-{arch}.{ext}"),
        Meta("ac-discovery-pubkeys", "example.com/app", "https://example.com/pubkeys.gpg"),
        Meta("ac-discovery", "other.org", "https://other.org/{name}.{ext}"),
        Meta("ac-discovery", "example.com/app", "https://mirror/{name}-{channel}.{ext}"),
    ]


def test_templates_fill_name_labels_and_ext_and_skip_unfilled_ones() -> None:
    assert render_template("{name}/{x}.{ext}", {"name": "a.com/b", "x": "1", "ext": "aci"}) == "a.com/b/1.aci"
    assert render_template("{name}/{missing}.{ext}", {"name": "a", "ext": "aci"}) is None
    app = parse_app_name("example.com/app", arch="amd64")
    endpoints, keys, skipped = endpoints_of(parse_meta(PAGE), app)
    assert endpoints == [Endpoint("https://example.com/example.com/app-latest-linux-amd64.aci",
                                  "https://example.com/example.com/app-latest-linux-amd64.aci.asc")]
    assert keys == ["https://example.com/pubkeys.gpg"]
    assert skipped == ["https://mirror/{name}-{channel}.{ext}"]
    endpoints, _, skipped = endpoints_of(parse_meta(PAGE), parse_app_name("example.com/app:2.0,channel=beta"))
    assert [e.aci for e in endpoints] == [f"https://example.com/example.com/app-2.0-linux-{ARCH}.aci",
                                          "https://mirror/example.com/app-beta.aci"]
    assert skipped == []


def test_walk_goes_from_the_full_name_up_to_the_host() -> None:
    assert walk_prefixes("a.com/x/y") == ["a.com/x/y", "a.com/x", "a.com"]
    assert walk_prefixes("localhost") == ["localhost"]


class FakeWeb:
    """``get`` answering from a table of URLs; everything else is a 404. Records what was asked."""

    def __init__(self, pages: dict[str, tuple[int, bytes] | Exception]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def get(self, url: str) -> tuple[int, bytes]:
        self.asked.append(url)
        page = self.pages.get(url, (404, b""))
        if isinstance(page, Exception):
            raise page
        return page


def _page(*tags: str) -> bytes:
    return ("<html><head>" + "".join(f'<meta name="{n}" content="{c}">' for n, c in tags) + "</head></html>").encode()


def test_discovery_walks_up_past_404s_and_pages_without_a_matching_tag() -> None:
    web = FakeWeb({
        "https://a.com/org?ac-discovery=1": (200, _page(("ac-discovery", "b.com https://b.com/{name}.{ext}"))),
        "https://a.com?ac-discovery=1": (200, _page(("ac-discovery", "a.com https://a.com/{name}-{version}.{ext}"),
                                                   ("ac-discovery-pubkeys", "a.com https://a.com/key"))),
    })
    found = discover(parse_app_name("a.com/org/app:1"), web.get)
    assert web.asked == ["https://a.com/org/app?ac-discovery=1", "https://a.com/org?ac-discovery=1",
                         "https://a.com?ac-discovery=1"]
    assert found.endpoints == (Endpoint("https://a.com/a.com/org/app-1.aci", "https://a.com/a.com/org/app-1.aci.asc"),)
    assert found.keys == ("https://a.com/key",)
    assert found.tried == ("https://a.com/org/app?ac-discovery=1: answered 404",
                           "https://a.com/org?ac-discovery=1: no ac-discovery meta tag for a.com/org/app")


def test_discovery_stops_at_the_first_page_with_an_endpoint_and_says_what_it_tried() -> None:
    ok = (200, _page(("ac-discovery", "a.com https://a.com/{name}.{ext}")))
    web = FakeWeb({"https://a.com/x?ac-discovery=1": ok, "https://a.com?ac-discovery=1": ok})
    assert discover(parse_app_name("a.com/x"), web.get).endpoints[0].aci == "https://a.com/a.com/x.aci"
    assert web.asked == ["https://a.com/x?ac-discovery=1"]
    web = FakeWeb({"https://a.com?ac-discovery=1": FetchError("https://a.com?ac-discovery=1: connection refused")})
    found = discover(parse_app_name("a.com/x"), web.get)
    assert found.endpoints == ()
    assert found.tried == ("https://a.com/x?ac-discovery=1: answered 404",
                           "https://a.com?ac-discovery=1: connection refused")


def test_plain_http_is_tried_only_when_allowed() -> None:
    page = (200, _page(("ac-discovery", "a.com http://a.com/{name}.{ext}")))
    web = FakeWeb({"http://a.com?ac-discovery=1": page})
    assert discover(parse_app_name("a.com"), web.get).endpoints == ()
    assert web.asked == ["https://a.com?ac-discovery=1"]
    web = FakeWeb({"http://a.com?ac-discovery=1": page})
    assert discover(parse_app_name("a.com"), web.get, allow_http=True).endpoints[0].aci == "http://a.com/a.com.aci"
    assert web.asked == ["https://a.com?ac-discovery=1", "http://a.com?ac-discovery=1"]


def test_a_failed_discovery_names_each_url_tried_once_and_in_order_http_ones_too() -> None:
    """Through the real transport (on a mock one): with http allowed, each page is asked over
    https, then http; every URL that gave no endpoint is one line naming it once."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.url.path == "/x":
            return httpx.Response(404)
        return httpx.Response(200, content=_page(("ac-discovery", "b.com http://b.com/{name}.{ext}")))

    with Web(frozenset({"http"}), transport=httpx.MockTransport(answer)) as web:
        found = discover(parse_app_name("a.com/x"), web.get, allow_http=True)
    assert found.endpoints == ()
    assert found.tried == (
        "https://a.com/x?ac-discovery=1: cannot connect to a.com: [Errno 111] Connection refused",
        "http://a.com/x?ac-discovery=1: answered 404",
        "https://a.com?ac-discovery=1: cannot connect to a.com: [Errno 111] Connection refused",
        "http://a.com?ac-discovery=1: no ac-discovery meta tag for a.com/x",
    )


def test_a_refused_redirect_to_plain_http_is_named_by_the_url_asked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": f"http://a.com{request.url.raw_path.decode()}"})

    with Web(frozenset(), transport=httpx.MockTransport(answer)) as web:
        found = discover(parse_app_name("a.com"), web.get)
    assert found.tried == ("https://a.com?ac-discovery=1: refusing to follow a redirect to "
                           "http://a.com/?ac-discovery=1 over plain http (use --insecure-options=http)",)


def test_key_discovery_walks_until_a_pubkeys_tag() -> None:
    web = FakeWeb({
        "https://a.com/x?ac-discovery=1": (200, _page(("ac-discovery", "a.com https://a.com/{name}.{ext}"))),
        "https://a.com?ac-discovery=1": (200, _page(("ac-discovery-pubkeys", "a.com https://a.com/keys.asc"))),
    })
    found = discover(AppName("a.com/x"), web.get, want="keys")
    assert found.keys == ("https://a.com/keys.asc",) and len(web.asked) == 2


# -- the fetched image must be the one asked for -----------------------------------------------


def _image(name: str, **labels: str) -> Image:
    return Image(id="sha512-00", name=name, labels=tuple(labels.items()), format="appc")


def test_label_mismatch_errors_are_rkts() -> None:
    image = _image("example.com/app", version="1.2.0", os="linux", arch="amd64")
    check_image(parse_app_name("example.com/app", arch="amd64"), image)
    cases = {
        "example.com/app:2.0": 'requested value for label "version": "2.0" differs from fetched aci label value: "1.2.0"',
        "example.com/app:latest": 'requested value for label "version": "latest" differs from fetched aci label '
                                  'value: "1.2.0"',
        "example.com/app,arch=armv7b": 'requested value for label "arch": "armv7b" differs from fetched aci label '
                                       'value: "amd64"',
        "example.com/app,unexistinglabel=bla": 'requested label "unexistinglabel" not provided by the image manifest',
    }
    for name, message in cases.items():
        with pytest.raises(ImageError) as e:
            check_image(parse_app_name(name, arch="amd64"), image)
        assert message in str(e.value)
    with pytest.raises(ImageError, match='"example.com/app" expected but "example.com/other" found'):
        check_image(parse_app_name("example.com/app", arch="amd64"), _image("example.com/other", os="linux",
                                                                            arch="amd64"))


def test_fingerprints_show_in_groups_of_four_as_gpg() -> None:
    assert spaced_fingerprint("0123456789abcdef0123456789abcdef01234567") == \
        "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"


# -- the store first ------------------------------------------------------------------------------


def _stored(store: Store, tmp_path: Path, name: str, version: str, **labels: str) -> str:
    manifest = aci_manifest(name, version=version)
    manifest["labels"] += [{"name": k, "value": v} for k, v in labels.items()]
    aci = tmp_path / f"{name.replace('/', '_')}-{version}-{len(labels)}.aci"
    build_aci(aci, manifest)
    image_id = fetch(store, str(aci), insecure=frozenset({"image"})).id
    time.sleep(0.01)  # distinct import times
    return image_id


def test_store_lookup_wants_every_label_and_prefers_the_newest(store: Store, tmp_path: Path) -> None:
    old = _stored(store, tmp_path, "example.com/app", "1.0.0")
    new = _stored(store, tmp_path, "example.com/app", "2.0.0")
    beta = _stored(store, tmp_path, "example.com/app", "1.5.0", channel="beta")
    _stored(store, tmp_path, "example.com/other", "3.0.0")

    def found(text: str) -> str | None:
        image = find_stored(store, parse_app_name(text))
        return image.id if image else None

    assert found("example.com/app") == beta
    assert found("example.com/app:1.0.0") == old
    assert found("example.com/app:2.0.0,os=linux") == new
    assert found("example.com/app,channel=beta") == beta
    assert found("example.com/app,channel=stable") is None
    assert found("example.com/app,arch=s390x" if ARCH != "s390x" else "example.com/app,arch=amd64") is None
    assert found("example.com/nothing") is None


def test_pull_policies_new_and_never_use_the_store_without_the_network(store: Store, tmp_path: Path) -> None:
    stored = _stored(store, tmp_path, "localhost/app", "1.0.0")
    for policy in ("new", "never"):
        options = FetchOptions(pull_policy=policy)
        assert import_discovered(store, "localhost/app,os=linux", source="x", options=options).id == stored
    with pytest.raises(NotFound, match=r'image "localhost/app:9" not found in the store \(pull policy never\)'):
        import_discovered(store, "localhost/app:9", source="localhost/app:9", options=FetchOptions(pull_policy="never"))


def test_resolve_keeps_store_names_and_ids_and_sends_only_appc_names_to_discovery(store: Store,
                                                                                   tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path / "data"))
    stored = _stored(store, tmp_path, "localhost/app", "1.0.0")
    assert resolve_image(config, store, stored[:12], pull_policy="update").id == stored
    assert resolve_image(config, store, "localhost/app:1.0.0", pull_policy="new").id == stored
    assert resolve_image(config, store, "localhost/app", pull_policy="new").id == stored  # by name, newest
    assert resolve_image(config, store, "localhost/app,os=linux", pull_policy="never").id == stored
    with pytest.raises(NotFound, match='"busybox" not found in the store'):
        resolve_image(config, store, "busybox", pull_policy="new")  # a short name never goes to discovery
    with pytest.raises(NotFound, match=r'"localhost/app:2.0.0" not found in the store \(pull policy never\)'):
        resolve_image(config, store, "localhost/app:2.0.0", pull_policy="never")
    with pytest.raises(UsageError, match="label name 'Os' is not a valid AC Identifier"):
        resolve_image(config, store, "localhost/app,Os=linux", pull_policy="new")
