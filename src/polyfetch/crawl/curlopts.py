"""The request options of ``crawl`` and ``get`` that curl users know: -X, -d, --json, -b,
--cookie-jar-out, --http2, --http3, and crawl's --input-format. Argparse only at import
(imported before gevent may patch); `body` reads what -d and --json name once a crawl starts.
"""

from __future__ import annotations

import argparse
from typing import IO, Any

#: What ``--input-format`` takes.
INPUT_FORMATS = ("auto", "text", "jsonl")

HELP_TEXT = """\
Requests (crawl and get), as curl has them: -X sets the method of every request;
-d DATA sends DATA as the body (@FILE reads it from FILE, line breaks removed;
@- from stdin, for get), repeated -d are joined with '&', and unless -H gives
one, Content-Type is application/x-www-form-urlencoded; --json DATA sends DATA
as it is (@FILE: the file as it is; repeated --json are concatenated) with
Content-Type and Accept application/json unless -H gives them. -d and --json
imply POST unless -X says otherwise, and do not go together (one body per
request). Without -X, -d or --json, nothing changes: each URL is a plain GET.
POST and PATCH are not retried after the request may have reached the server.

JSON Lines input (crawl): --input-format jsonl, or auto (the default): JSON
Lines when the first line that is not blank or a # comment starts with '{',
one URL per line otherwise. Each line is an object with the fields of
polyfetch.Request: {"url": ..., "method", "headers", "params", "data" (a
string or form fields), "json", "timeout", "retries", "max_bytes",
"max_redirects", "retry_methods", "meta"}; only url is required. -X and -H are
defaults each line may override; -d and --json are refused with such input
(the lines carry their bodies). A line that is not such an object gets a
record with error InvalidRequest and a message starting "line N:", and the
crawl goes on: one record per line, always. A line's meta (any JSON value) is
carried to its record's meta field. Dedup: two lines are duplicates when they
send the same request: the same canonical URL (params applied) and, beyond a
plain GET, the same method, headers (names in any case) and body; timeout,
retries and meta do not count. --resume goes by line number, as for URL lists.

Cookies (crawl and get): -b FILE loads cookies from a Netscape/Mozilla cookie
file (the format of curl -c and browser exports; #HttpOnly_ lines included)
and turns the cookie jar on: Set-Cookie answers are kept and sent back, with
the standard rules (domain, path, secure, expiry). --cookie-jar-out FILE
writes the jar to FILE at the end (session cookies included, as curl does; an
atomic replace of FILE, nothing else touched), also after Ctrl+C. (-c is
--concurrency here, so the option has no short name.) Not with --cluster.
"""


def add_arguments(p: argparse.ArgumentParser, *, crawl: bool) -> None:
    """Add the request options (and with ``crawl``, --input-format) to ``p``."""
    req = p.add_argument_group("requests (curl's options; see below)" if crawl else "requests")
    req.add_argument(
        "-X",
        "--method",
        metavar="METHOD",
        help="the HTTP method of every request (default: GET, or POST with -d / --json)",
    )
    req.add_argument(
        "-d",
        "--data",
        action="append",
        metavar="DATA",
        help="send DATA as a form body (POST unless -X); @FILE reads FILE (line breaks "
        "removed); repeated -d are joined with '&'",
    )
    req.add_argument(
        "--json",
        action="append",
        dest="json_data",
        metavar="DATA",
        help="send DATA as JSON, as it is (@FILE reads FILE), with Content-Type and Accept "
        "application/json (POST unless -X); repeated --json are concatenated; not with -d",
    )
    req.add_argument(
        "-b",
        "--cookie-jar",
        dest="cookie_jar",
        metavar="FILE",
        help="load cookies from FILE (Netscape format, as curl -c writes it) and keep and "
        "send cookies during the run",
    )
    req.add_argument(
        "--cookie-jar-out",
        metavar="FILE",
        help="save the cookies to FILE at the end, in curl's format (session cookies "
        "included; FILE is replaced atomically); turns the cookie jar on",
    )
    req.add_argument(
        "--http2",
        action="store_true",
        help="negotiate HTTP/2 over TLS (ALPN); --backend curl only, the others refuse",
    )
    req.add_argument(
        "--http3",
        action="store_true",
        help="try HTTP/3 (QUIC) first, falling back to HTTP/2 or 1.1; --backend curl only",
    )
    if crawl:
        req.add_argument(
            "--input-format",
            choices=INPUT_FORMATS,
            default="auto",
            help="text: one URL per line; jsonl: one request object per line; auto: jsonl "
            "when the first line that is not blank or a comment starts with '{' (default: "
            "%(default)s)",
        )
    else:
        p.set_defaults(input_format="text")


class BodyError(Exception):
    """-d or --json cannot be used: the message says why."""


def body(args: argparse.Namespace, stdin: IO[Any] | None) -> tuple[bytes | None, str | None]:
    """The body -d or --json give (None: neither), and the Content-Type it implies.

    ``stdin``: where ``@-`` reads (None when stdin is the input).
    """
    data, js = args.data, args.json_data
    if data and js:
        raise BodyError("give -d or --json, not both (one body per request)")
    if data:
        parts = [_read(d, stdin, strip=True) for d in data]
        return b"&".join(parts), "application/x-www-form-urlencoded"
    if js:
        return b"".join(_read(d, stdin, strip=False) for d in js), "application/json"
    return None, None


def _read(value: str, stdin: IO[Any] | None, *, strip: bool) -> bytes:
    if not value.startswith("@"):
        return value.encode("utf-8", "surrogateescape")
    path = value[1:]
    if path == "-":
        if stdin is None:
            raise BodyError("@- cannot read a body from stdin: stdin is the input")
        raw = getattr(stdin, "buffer", stdin).read()
        content = raw.encode("utf-8") if isinstance(raw, str) else raw
    else:
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise BodyError(f"cannot read {path}: {exc.strerror or exc}") from None
    if strip:  # curl -d @FILE: carriage returns and newlines are stripped out
        content = content.replace(b"\r", b"").replace(b"\n", b"")
    return content


def stdin_for_bodies(args: argparse.Namespace, stdin: IO[Any]) -> IO[Any] | None:
    """``stdin`` if a body may read it (it is not the input), else None."""
    if args.urls is not None or args.input not in (None, "-"):
        return stdin
    return None
