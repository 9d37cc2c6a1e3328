"""README.md's scraper example, run as written against the built-in server and a real proxy."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from polyfetch.testing.proxies import ProxyServers, start_proxies

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text()
    after = text.index("A scraper, in full")
    start = text.index("```python\n", after) + len("```python\n")
    return text[start : text.index("```", start)]


def test_readme_scraper_logs_in_then_fetches_with_the_cookie_through_the_proxy(servers, tmp_path):
    with start_proxies(tmp_path) as proxies:
        code = _example()
        code = re.sub(r'^site = ".*?"', f'site = "{servers.http}"', code, count=1, flags=re.M)
        proxy = ProxyServers.login(proxies.http_auth)
        code = re.sub(r'^proxy = ".*?"', f'proxy = "{proxy}"', code, count=1, flags=re.M)
        assert servers.http in code and proxy in code
        mark = ProxyServers.size(proxies.http_auth_log)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        lines = sorted(out.getvalue().splitlines())
        assert lines == [f"{n} 200 session=abc123" for n in range(3)], lines
        # proxy.py writes one access line per connection to it, after the exchange
        for path in ("/cookies/set", "/anything/page/"):
            seen = ProxyServers.since(proxies.http_auth_log, mark, wait_for=path)
            assert path in seen, seen


def _block(path: Path, after: str) -> str:
    text = path.read_text()
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_following_links_example_crawls_as_written(servers):
    """docs/following-links.md's library example, on the generated site (`testing.site`)."""
    from polyfetch.testing import site

    seed = f"{servers.http}/site/40-readme{id(servers) % 1000}/p0.html"
    code = _block(README.parent / "docs" / "following-links.md", "## The library")
    code = code.replace('"https://docs.example.org/"', repr(seed))
    assert repr(seed) in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/following-links.md", "exec"), {})
    printed = {line.split()[1]: int(line.split()[0]) for line in out.getvalue().splitlines()}
    assert printed == site.expected([seed], scope="prefix", max_depth=3)
