"""What the HTTP clients (the registry client and the https ACI fetcher) say about a failed
request: one short phrase each, for the one-line errors that name the URL or registry."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

    import httpx


def status_text(resp: httpx.Response) -> str:
    """``404 Not Found``."""
    return f"{resp.status_code} {resp.reason_phrase}".strip()


def retry_after(resp: httpx.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for (the delta-seconds form), if any."""
    value = resp.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


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
