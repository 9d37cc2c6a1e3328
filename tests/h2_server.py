"""A real HTTP/2 (and HTTP/3) server for the curl backend's tests: hypercorn and a tiny ASGI app.

Usage: python tests/h2_server.py CERT KEY (run by tests/test_curl_http.py in its own session).
It serves TLS with ALPN h2 and http/1.1 on a TCP port and HTTP/3 (QUIC, aioquic) on the same
UDP port, prints ``ready PORT`` once the TCP port accepts, and answers every request with JSON
naming the client's address and port - one per connection - and the HTTP version it spoke.
``?delay=MS`` holds the answer, so that requests overlap.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from urllib.parse import parse_qs


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope.get("query_string", b"").decode())
    delay = int(query.get("delay", ["0"])[0])
    if delay:
        await asyncio.sleep(delay / 1000)
    body = json.dumps(
        {"client": list(scope["client"]), "http_version": scope["http_version"]}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


async def main(cert: str, key: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.quic_bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = cert, key
    config.backlog = 1024
    config.accesslog = config.errorlog = None
    server = asyncio.ensure_future(serve(app, config))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    while not server.done():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        break
    await asyncio.sleep(0.1)  # the QUIC endpoint is made beside the TCP one
    print(f"ready {port}", flush=True)
    del loop
    await server


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
