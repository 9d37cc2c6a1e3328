"""``crawl`` and ``get`` with more than URLs: -X, -d, --json, JSON Lines input, cookie files,
--http2 - against the real test servers (``/anything`` echoes what it received), and real
curl for the cookie files' round trips. In process (`polyfetch.cli.main`), to stay quick.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from polyfetch.cli import main
from polyfetch.crawl.inputs import InputCounts, sniff
from polyfetch.crawl.jsonl import BadLine, parse, read_requests, request_key
from polyfetch.request import Request
from tests.conftest import Servers
from tests.crawl_helpers import ROOT

try:  # the HTTP/2 server fixture (hypercorn), when its packages are here
    from tests.test_curl_http import h2
except pytest.skip.Exception:
    h2 = None

GET_FAST = ["--timeout", "5", "--retries", "0"]
FAST = [*GET_FAST, "-q"]
CURL = shutil.which("curl")


def _main(*argv: str, stdin: object = None) -> tuple[int, str]:
    err = io.StringIO()
    code = main(list(argv), stdout=io.StringIO(), stderr=err, stdin=stdin or io.StringIO())  # type: ignore[arg-type]
    return code, err.getvalue()


def _records(path: Path) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(out, key=lambda r: r["line"])


def _echo(servers: Servers, tmp_path: Path, *argv: str, path: str = "/anything") -> Any:
    """What ``/anything`` saw of one ``polyfetch get`` with ``argv``."""
    body = tmp_path / "body.json"
    code, err = _main("get", servers.http + path, *argv, "-O", str(body), *GET_FAST)
    assert code == 0, err
    return json.loads(body.read_bytes())


# -- -X, -d, --json ------------------------------------------------------------------------


def test_data_is_a_form_post_joined_with_ampersands_and_read_from_files(servers, tmp_path):
    form = tmp_path / "form.txt"
    form.write_bytes(b"c=3\r\n&d=4\n")  # curl -d @FILE drops the line breaks
    seen = _echo(servers, tmp_path, "-d", "a=1", "-d", "b=2", "-d", f"@{form}")
    assert seen["method"] == "POST"
    assert seen["body"] == "a=1&b=2&c=3&d=4"
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["form"] == {"a": ["1"], "b": ["2"], "c": ["3"], "d": ["4"]}


def test_json_sets_content_type_and_accept_and_method_wins(servers, tmp_path):
    doc = tmp_path / "doc.json"
    doc.write_bytes(b'{"b": [1,\n 2]}')
    seen = _echo(servers, tmp_path, "-X", "PUT", "--json", f"@{doc}")
    assert seen["method"] == "PUT" and seen["json"] == {"b": [1, 2]}
    assert seen["body"] == '{"b": [1,\n 2]}'  # sent as it is
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["accept"] == "application/json"
    joined = _echo(servers, tmp_path, "--json", '{"a":', "--json", "1}")
    assert joined["method"] == "POST" and joined["json"] == {"a": 1}


def test_header_given_wins_over_the_implied_content_type(servers, tmp_path):
    seen = _echo(servers, tmp_path, "-d", "x", "-H", "content-type: text/plain", "-X", "PATCH")
    assert seen["method"] == "PATCH" and seen["body"] == "x"
    assert seen["headers"]["content-type"] == "text/plain"


def test_method_and_body_apply_to_every_url_of_a_list(servers, tmp_path):
    urls, out, saved = tmp_path / "urls.txt", tmp_path / "out.jsonl", tmp_path / "saved"
    urls.write_text("".join(f"{servers.http}/anything/{i}\n" for i in range(5)))
    argv = [str(urls), "-o", str(out), "--save-dir", str(saved), "-X", "DELETE", "-d", "k=v"]
    code, err = _main("crawl", *argv, *FAST)
    assert code == 0, err
    records = _records(out)
    assert [r["status"] for r in records] == [200] * 5
    for r in records:
        seen = json.loads((saved / r["file"]).read_bytes())
        assert (seen["method"], seen["body"], seen["path"]) == (
            "DELETE",
            "k=v",
            f"/anything/{r['line'] - 1}",
        )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-d", "a", "--json", "{}"], "give -d or --json, not both"),
        (["-d", "@{missing}"], "cannot read {missing}"),
        (["--json", "@-"], "@- cannot read a body from stdin: stdin is the input"),
        (["-b", "{missing}"], "cannot read cookies from {missing}"),
        (["-b", "{notcookies}"], "cannot load cookies from {notcookies}"),
        (["--input-format", "jsonl", "-d", "a=1"], "-d and --json are for URL lists"),
    ],
)
def test_request_option_mistakes_are_one_line_usage_errors(argv, message, tmp_path):
    names = {"missing": tmp_path / "missing", "notcookies": tmp_path / "notcookies.txt"}
    (tmp_path / "notcookies.txt").write_text("hello\n")
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")

    def fill(text: str) -> str:
        for name, path in names.items():
            text = text.replace("{" + name + "}", str(path))
        return text

    argv, message = [fill(a) for a in argv], fill(message)
    code, err = _main("crawl", "-", "-o", str(out), *argv, stdin=io.StringIO("http://x/\n"))
    assert code == 2, err
    assert len(err.splitlines()) == 1 and message in err, err
    assert out.read_text() == "keep me\n"  # nothing touched


def test_cookies_and_cluster_do_not_go_together(tmp_path):
    code, err = _main("crawl", "-", "--cookie-jar-out", str(tmp_path / "c"), "--cluster", "x:1")
    assert code == 2 and "do not work with --cluster" in err, err
    assert not (tmp_path / "c").exists()


# -- JSON Lines input ----------------------------------------------------------------------


def _jsonl(path: Path, *lines: object) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def test_jsonl_one_record_per_line_bad_lines_typed_with_their_numbers(servers, tmp_path):
    a = servers.http + "/anything"
    inp = _jsonl(
        tmp_path / "in.jsonl",
        {"url": a + "/1", "method": "POST", "json": {"q": 1}, "meta": {"id": 1, "tags": ["x"]}},
        "",
        "# a comment",
        {"url": a + "/2", "data": {"f": ["1", "2"]}, "headers": {"X-Id": "2"}, "meta": 2},
        "{not json",
        {"url": a + "/3", "methd": "POST", "meta": "kept"},
        {"url": 3},
        {"method": "GET"},
        [1, 2],
        {"url": a + "/4", "timeout": "soon"},
        {"url": a + "/5", "data": "x", "json": 1},
        {"url": a + "/6", "save_to": "/etc/passwd"},
        {"url": a + "/7", "params": {"p": [1, 2]}, "method": "PUT", "data": "raw", "timeout": 4},
        {"url": a + "/8", "method": "bad method"},
    )
    out, saved = tmp_path / "out.jsonl", tmp_path / "saved"
    code, err = _main("crawl", str(inp), "-o", str(out), "--save-dir", str(saved), *FAST)
    assert code == 0, err
    records = _records(out)
    assert [r["line"] for r in records] == [1, *range(4, 15)]
    by_line = {r["line"]: r for r in records}
    bad = {
        5: "line 5: not valid JSON",
        6: "line 6: unknown field 'methd'",
        7: "line 7: url must be a non-empty string, got 3",
        8: "line 8: no url",
        9: "line 9: not a JSON object but an array",
        10: 'line 10: timeout must be a number of seconds > 0, got "soon"',
        11: "line 11: give data or json, not both",
        12: "line 12: save_to is not taken from the input",
    }
    for number, message in bad.items():
        r = by_line[number]
        assert (r["error"], r["status"], r["attempts"]) == ("InvalidRequest", None, 0), r
        assert r["error_message"].startswith(message), r
    assert by_line[6]["meta"] == "kept" and by_line[6]["url"] == a + "/3"
    assert by_line[5]["url"] == "{not json"
    # a method the core refuses: still this line's InvalidRequest record
    assert by_line[14]["error"] == "InvalidRequest" and "HTTP token" in by_line[14]["error_message"]

    def seen(line: int) -> Any:
        assert by_line[line]["status"] == 200, by_line[line]
        return json.loads((saved / by_line[line]["file"]).read_bytes())

    one = seen(1)
    assert (one["method"], one["json"], one["headers"]["content-type"]) == (
        "POST",
        {"q": 1},
        "application/json",
    )
    assert by_line[1]["meta"] == {"id": 1, "tags": ["x"]}
    four = seen(4)
    assert four["method"] == "GET" and four["headers"]["x-id"] == "2"
    assert four["form"] == {"f": ["1", "2"]} and by_line[4]["meta"] == 2
    thirteen = seen(13)
    assert (thirteen["method"], thirteen["body"], thirteen["args"]) == (
        "PUT",
        "raw",
        {"p": ["1", "2"]},
    )
    assert "meta" not in by_line[13]


def test_jsonl_dedup_compares_requests_not_urls(servers, tmp_path):
    a = servers.http + "/anything"
    lines = [
        {"url": a},  # 1
        {"url": a.replace("http://", "HTTP://") + "#frag"},  # 2 canonical: same as 1
        {"url": a, "method": "POST", "json": {"x": 1, "y": 2}},  # 3
        {"url": a, "method": "post", "json": {"y": 2, "x": 1}, "meta": "again"},  # 4 dup of 3
        {"url": a, "method": "POST", "json": {"x": 2}},  # 5 another body
        {"url": a, "method": "PUT", "json": {"x": 1, "y": 2}},  # 6 another method
        {"url": a, "headers": {"X-A": "1"}},  # 7 another header
        {"url": a, "headers": [["x-a", "1"]], "timeout": 3},  # 8 dup of 7
        {"url": a, "params": {"q": "1"}},  # 9
        {"url": a + "?q=1"},  # 10 dup of 9
        {"url": a, "method": "GET"},  # 11 dup of 1
    ]
    inp, out = _jsonl(tmp_path / "in.jsonl", *lines), tmp_path / "out.jsonl"
    code, err = _main("crawl", str(inp), "-o", str(out), *FAST)
    assert code == 0, err
    dups = {r["line"]: r["duplicate_of"] for r in _records(out)}
    assert dups == {1: None, 2: 1, 3: None, 4: 3, 5: None, 6: None, 7: None, 8: 7, 9: None,
                    10: 9, 11: 1}  # fmt: skip
    assert _records(out)[3]["meta"] == "again"
    code, err = _main("crawl", str(inp), "-o", str(out), "--dedup", "off", *FAST)
    assert code == 0 and all(r["duplicate_of"] is None for r in _records(out))


def test_jsonl_resume_goes_by_line_number_and_keeps_dedup(servers, tmp_path):
    a = servers.http + "/anything"
    lines = [
        {"url": a, "method": "POST", "data": "1", "meta": 1},
        {"url": a + "/x"},
        "nope",
        {"url": a, "method": "POST", "data": "1"},  # a duplicate of line 1
        {"url": a, "method": "POST", "data": "2", "meta": 4},
    ]
    inp, out = _jsonl(tmp_path / "in.jsonl", *lines), tmp_path / "out.jsonl"
    args = ["crawl", str(inp), "-o", str(out), *FAST]
    assert _main(*args)[0] == 0
    whole = _records(out)
    kept = [r for r in whole if r["line"] in (1, 3)]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"url": "torn')
    code, err = _main(*args, "--resume")
    assert code == 0, err
    again = _records(out)
    assert [r["line"] for r in again] == [1, 2, 3, 4, 5]
    assert again[3]["duplicate_of"] == 1  # line 1 was recorded by the first run
    assert again[4]["meta"] == 4 and again[4]["status"] == 200
    assert [r["error"] for r in again] == [r["error"] for r in whole]


def test_input_format_is_detected_and_can_be_forced(servers, tmp_path):
    out = tmp_path / "out.jsonl"
    line = json.dumps({"url": servers.http + "/bytes/3", "meta": "m"})
    stdin = io.StringIO(f"\n# requests\n{line}\n")
    assert _main("crawl", "-", "-o", str(out), *FAST, stdin=stdin)[0] == 0
    (r,) = _records(out)
    assert (r["line"], r["status"], r["meta"]) == (3, 200, "m")
    text = tmp_path / "urls.txt"
    text.write_text(f"{servers.http}/bytes/3\n{line}\n")  # a URL first: plain text
    assert _main("crawl", str(text), "-o", str(out), *FAST)[0] == 0
    assert [r["error"] for r in _records(out)] == [None, "InvalidURL"]
    text.write_text(f"{line}\n")
    assert _main("crawl", str(text), "-o", str(out), "--input-format", "text", *FAST)[0] == 0
    assert [r["error"] for r in _records(out)] == ["InvalidURL"]
    text.write_text(f"{servers.http}/bytes/3\n")
    assert _main("crawl", str(text), "-o", str(out), "--input-format", "jsonl", *FAST)[0] == 0
    assert [r["error"] for r in _records(out)] == ["InvalidRequest"]


def test_jsonl_csv_output_has_a_meta_column(servers, tmp_path):
    inp = _jsonl(tmp_path / "in.jsonl", {"url": servers.http + "/bytes/1", "meta": {"k": [1]}})
    out = tmp_path / "out.csv"
    assert _main("crawl", str(inp), "-o", str(out), "--format", "csv", *FAST)[0] == 0
    import csv

    with out.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert json.loads(row["meta"]) == {"k": [1]} and row["status"] == "200"


def test_sniff_and_reader_stay_lazy():
    class Lines(io.BytesIO):
        reads = 0

        def readline(self, size: int | None = -1) -> bytes:
            Lines.reads += 1
            return super().readline(size)

    body = b"\n#c\n" + b"".join(b'{"url": "http://h/%d"}\n' % i for i in range(10_000))
    stream = Lines(body)
    found, replay = sniff(stream)
    assert found and len(replay) == 3 and Lines.reads == 3
    reader = read_requests(stream, InputCounts(), replay)
    first = next(reader)
    assert first.number == 3 and first.request == Request("http://h/0")
    assert Lines.reads == 3  # the replayed lines first, nothing more read
    next(reader)
    assert Lines.reads == 4


def test_request_key_and_parse_units():
    assert request_key(Request("HTTP://H:80/a#x")) == "http://h/a"
    assert request_key(Request("http://h/a", method="POST")) != request_key(Request("http://h/a"))
    assert request_key(Request("http://h/a", data="1")) != request_key(Request("http://h/a"))
    assert request_key(Request("http://h/a", data="1")) == request_key(
        Request("http://h/a#y", data="1", meta=3, timeout=1)
    )
    with pytest.raises(BadLine, match="headers must be"):
        parse('{"url": "http://h/", "headers": {"a": null, "b": ["x"]}}')
    with pytest.raises(BadLine, match="retries must be a whole number"):
        parse('{"url": "http://h/", "retries": true}')
    assert parse('{"url": "http://h/", "headers": null}') == Request("http://h/")


# -- cookie files --------------------------------------------------------------------------


def _cookies_seen(servers: Servers, tmp_path: Path, *argv: str) -> dict[str, str]:
    return _echo(servers, tmp_path, *argv, path="/cookies")["cookies"]  # type: ignore[no-any-return]


def test_a_cookie_file_in_curls_format_is_loaded(servers, tmp_path):
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        "# https://curl.se/docs/http-cookies.html\n\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\ts1\n"  # 0: a session cookie
        "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t4102444800\thttponly\th1\n"
        "127.0.0.1\tFALSE\t/cookies/\tFALSE\t4102444800\tunder\tu1\n"  # curl's "/dir/" path
        "127.0.0.1\tFALSE\t/\tFALSE\t1000000000\texpired\tx\n"
        "127.0.0.1\tFALSE\t/other\tFALSE\t0\telsewhere\te\n"
        "127.0.0.1\tFALSE\t/\tTRUE\t0\tsecure\ts\n"  # https only
        "other.example\tFALSE\t/\tFALSE\t0\tforeign\tf\n"
    )
    assert _cookies_seen(servers, tmp_path, "-b", str(jar)) == {
        "session": "s1",
        "httponly": "h1",
        "under": "u1",
    }
    assert jar.read_text().count("\n") == 10  # loading leaves the file alone


@pytest.mark.skipif(CURL is None, reason="needs the curl command")
def test_cookies_round_trip_with_real_curl(servers, tmp_path):
    assert CURL is not None
    theirs, ours = tmp_path / "curl.txt", tmp_path / "ours.txt"
    for query in ("a=1&attrs=HttpOnly", "b=2&attrs=Max-Age%3D3600", "c=3&attrs=Path%3D/"):
        subprocess.run(
            [CURL, "-sS", "-b", str(theirs), "-c", str(theirs),
             f"{servers.http}/cookies/set?{query}"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    assert "#HttpOnly_127.0.0.1" in theirs.read_text()
    before = sorted(os.listdir(tmp_path))
    set_url = f"{servers.http}/cookies/set?d=4&attrs=Path%3D/"
    code, err = _main(
        "get", f"{servers.http}/cookies", set_url, "-b", str(theirs), "--cookie-jar-out",
        str(ours), "-c", "1", "-O", str(tmp_path / "bodies"), *GET_FAST,
    )  # fmt: skip
    assert code == 0, err
    first, _ = json.JSONDecoder().raw_decode((tmp_path / "bodies").read_text())
    assert first["cookies"] == {"a": "1", "b": "2", "c": "3"}
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "ours.txt", "bodies"])
    assert (ours.stat().st_mode & 0o777) == 0o600
    assert theirs.read_text().count("\t") == 18  # curl's own file untouched: 3 cookies
    text = ours.read_text()
    assert text.startswith("# Netscape HTTP Cookie File\n")
    assert "#HttpOnly_127.0.0.1\tFALSE\t" in text and "\td\t4\n" in text
    assert "\t0\td\t4\n" in text  # a session cookie, written the way curl writes it
    sent = subprocess.run(
        [CURL, "-sS", "-b", str(ours), f"{servers.http}/cookies"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    assert json.loads(sent.stdout)["cookies"] == {"a": "1", "b": "2", "c": "3", "d": "4"}
    # and our file loads here again
    assert _cookies_seen(servers, tmp_path, "-b", str(ours)) == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "4",
    }


def test_crawl_keeps_cookies_across_urls_and_saves_them(servers, tmp_path):
    urls, out, jar = tmp_path / "urls.txt", tmp_path / "out.jsonl", tmp_path / "jar.txt"
    urls.write_text(f"{servers.http}/cookies/set?s=1&attrs=Path%3D/\n")
    code, err = _main("crawl", str(urls), "-o", str(out), "--cookie-jar-out", str(jar), *FAST)
    assert code == 0, err
    assert "\ts\t1\n" in jar.read_text()
    jar.write_text(jar.read_text())  # then a second crawl with it
    assert _cookies_seen(servers, tmp_path, "-b", str(jar)) == {"s": "1"}


# -- --http2, --http3 ----------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--http2", "--http3"])
def test_http2_and_http3_are_refused_by_backends_without_them(option, tmp_path):
    out = tmp_path / "out.jsonl"
    code, err = _main(
        "crawl", "-", "-o", str(out), option, "--backend", "threads", stdin=io.StringIO("x\n")
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "threads backend speaks HTTP/1.1 only" in err and "curl" in err, err
    assert not out.exists()


@pytest.mark.skipif(h2 is None, reason="needs pycurl and hypercorn")
def test_http2_on_the_curl_backend(h2, tmp_path):
    base, ca = h2
    out = tmp_path / "out.jsonl"
    code, err = _main(
        "get", f"{base}/v", f"{base}/v?i=2", "--http2", "--backend", "curl", "--cacert", ca,
        "-o", str(out), *GET_FAST,
    )  # fmt: skip
    assert code == 0, err
    assert {r["http_version"] for r in _records(out)} == {"2"}


def test_help_documents_the_request_options():
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "crawl", "--help"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0
    for option in (
        "--method", "--data", "--json", "--cookie-jar", "--cookie-jar-out", "--http2",
        "--http3", "--input-format", "JSON Lines input", "InvalidRequest", "Dedup",
    ):  # fmt: skip
        assert option in proc.stdout, option
