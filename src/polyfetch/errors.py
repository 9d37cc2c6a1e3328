"""The error taxonomy every backend maps its library's exceptions into.

A failed fetch is a `Result` whose `error` is one of these; they are never
raised out of `Fetcher.map()`. HTTP 4xx/5xx are not errors: they are results
with a status. `BackendError` and `ConfigError` are raised, because they mean
the fetcher itself cannot run as asked.
"""

from __future__ import annotations


class _RecordedError(Exception):
    """An error kept in a `Result`: a readable message, a kind, equal by value, picklable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        """The class name, as written in output records (e.g. ``"ConnectTimeout"``)."""
        return type(self).__name__

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.message == self.message  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.message))


class FetchError(_RecordedError):
    """Base of every per-URL failure; `str(err)` is a readable message."""

    #: Whether a GET that failed this way is worth another attempt.
    retryable: bool = False


class InvalidURL(FetchError):
    """The input is not a usable URL (not a string, no host, bad port, ...)."""


class UnsupportedScheme(InvalidURL):
    """The URL, or a redirect, names a scheme other than http or https."""


class InvalidRequest(FetchError):
    """A `polyfetch.Request` item that cannot be sent: a bad method, body, header or option."""


class DNSError(FetchError):
    """The host name could not be resolved."""


class ConnectError(FetchError):
    """The TCP connection was refused or could not be made."""

    retryable = True


class ProxyError(ConnectError):
    """The proxy could not be reached, or refused to carry the request: a CONNECT answered
    with a status other than 2xx, a SOCKS failure. The message names the proxy's host:port,
    never its credentials."""


class ProxyAuthError(ProxyError):
    """The proxy wants credentials, or refused the ones given (HTTP 407, SOCKS5 login):
    not retried."""

    retryable = False


class ConnectTimeout(ConnectError):
    """The TCP connection (or TLS handshake) took longer than the connect timeout."""


class ReadTimeout(FetchError):
    """No byte arrived within the read timeout (it bounds the gap between bytes)."""

    retryable = True


class ReadError(FetchError):
    """The connection was reset or closed before the response was complete."""

    retryable = True


class TotalTimeout(FetchError):
    """The request, retries and redirects included, outlived its total timeout."""


class ProtocolError(FetchError):
    """The server's reply is not valid HTTP/1.1 (bad status line, headers, framing, encoding)."""


class TooLarge(FetchError):
    """The body, on the wire or decompressed, is larger than ``max_bytes``."""


class TooManyRedirects(FetchError):
    """More redirects than ``max_redirects``, or a redirect loop."""


class SaveError(FetchError):
    """A body to be saved (``Request(save_to=...)``) could not be written to its file."""


class TLSError(FetchError):
    """The TLS handshake failed, e.g. the certificate could not be verified."""


class RobotsDisallowed(FetchError):
    """The host's robots.txt does not let our user agent fetch this URL (no request was
    made), or robots.txt could not be fetched, which RFC 9309 makes a disallow for now."""


class NotFollowed(FetchError):
    """A URL found while crawling that the crawl refused: no request was made. Recorded only
    when asked (``Fetcher.crawl(refused=True)``, ``crawl --follow --record-refused``)."""


class OutOfScope(NotFollowed):
    """The URL is outside the crawl's scope (host, domain, prefix) or its accept/reject
    patterns."""


class TooDeep(NotFollowed):
    """The URL is more links away from the seeds than ``max_depth``."""


class PastMaxPages(NotFollowed):
    """The crawl had fetched ``max_pages`` pages when it found the URL."""


def unexpected(exc: BaseException) -> FetchError:
    """The taxonomy's catch-all, so that no library exception (or bug) escapes as itself."""
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return FetchError(f"unexpected {type(exc).__module__}.{type(exc).__qualname__}: {text}")


class ProcessError(_RecordedError):
    """Base of post-processing failures, found in `Result.process_error` (never raised by map)."""


class ProcessorFailed(ProcessError):
    """The processor raised; the message names its exception and where it was raised."""


class ProcessTimeout(ProcessError):
    """The processor ran longer than ``process_timeout``; its worker was replaced."""


class WorkerDied(ProcessError):
    """The worker process died (killed, crashed, out of memory) twice while running this item."""


class BackendError(RuntimeError):
    """A backend cannot start as configured (missing package, gevent not patched, ...)."""


class ConfigError(ValueError):
    """An option given to the fetcher is out of range or of the wrong kind."""


#: Every per-URL error class, by name, for parsing records back.
TAXONOMY: dict[str, type[FetchError]] = {
    cls.__name__: cls
    for cls in (
        FetchError,
        InvalidURL,
        UnsupportedScheme,
        InvalidRequest,
        DNSError,
        ConnectError,
        ProxyError,
        ProxyAuthError,
        ConnectTimeout,
        ReadTimeout,
        ReadError,
        TotalTimeout,
        ProtocolError,
        TooLarge,
        TooManyRedirects,
        SaveError,
        TLSError,
        RobotsDisallowed,
        NotFollowed,
        OutOfScope,
        TooDeep,
        PastMaxPages,
    )
}
