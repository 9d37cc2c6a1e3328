"""Body decoding and size caps, the same for every backend because they all feed this."""

from __future__ import annotations

import gzip
import zlib

import pytest

from polyfetch._body import Body
from polyfetch.errors import ProtocolError, TooLarge

DATA = bytes(range(256)) * 400


def feed(body: Body, blob: bytes, step: int = 777) -> bytes | None:
    for i in range(0, len(blob), step):
        body.feed(blob[i : i + step])
    return body.finish()


@pytest.mark.parametrize(
    ("encoding", "blob"),
    [
        (None, DATA),
        ("identity", DATA),
        ("gzip", gzip.compress(DATA)),
        ("x-gzip", gzip.compress(DATA)),
        ("deflate", zlib.compress(DATA)),
        ("deflate", zlib.compress(DATA)[2:-4]),  # raw deflate, as some servers send it
        ("GZIP", gzip.compress(DATA[:5000]) + gzip.compress(DATA[5000:])),  # two members
    ],
)
def test_decodes(encoding, blob):
    body = Body(10**7, content_encoding=encoding)
    assert feed(body, blob) == DATA and body.size == len(DATA) and body.wire_size == len(blob)


@pytest.mark.parametrize("encoding", ["gzip, br", "compress", "x-custom"])
def test_a_body_in_an_encoding_we_cannot_decode_is_an_error_not_a_page(encoding):
    with pytest.raises(ProtocolError, match="not decodable"):
        feed(Body(10**7, content_encoding=encoding), b"opaque")
    assert Body(10**7, content_encoding=encoding).finish() == b""  # no body (a HEAD): fine


def test_zstd_is_decoded_under_both_caps_frame_after_frame():
    from polyfetch._body import zstd

    two = zstd.compress(DATA) + zstd.compress(b"tail")
    assert feed(Body(10**7, content_encoding="zstd"), two) == DATA + b"tail"
    with pytest.raises(TooLarge, match="decoded"):
        feed(Body(2**20, content_encoding="zstd"), zstd.compress(bytes(64 * 2**20)))
    with pytest.raises(ProtocolError, match="truncated zstd"):
        feed(Body(10**7, content_encoding="zstd"), zstd.compress(DATA)[:-10])


def test_identity_is_the_body_as_sent():
    assert feed(Body(10**7, content_encoding="identity"), b"plain") == b"plain"


def test_brotli_is_decoded_under_both_caps():
    import brotli

    assert feed(Body(10**7, content_encoding="br"), brotli.compress(DATA)) == DATA
    bomb = brotli.compress(bytes(64 * 2**20), quality=1)
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge, match="decoded"):
        feed(Body(2**20, content_encoding="br"), bomb)
    with pytest.raises(ProtocolError, match="truncated br"):
        feed(Body(10**7, content_encoding="br"), brotli.compress(DATA)[:-10])


def test_limits_on_the_wire_and_decoded():
    with pytest.raises(TooLarge):
        Body(100, content_length=101)
    with pytest.raises(TooLarge):
        feed(Body(1000), DATA)
    with pytest.raises(TooLarge):  # small on the wire, large decoded
        feed(Body(10_000, content_encoding="gzip"), gzip.compress(DATA))


def test_bomb_stops_at_the_limit():
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(c.compress(bytes(2**20)) for _ in range(256)) + c.flush()
    body = Body(2**20, content_encoding="gzip")
    with pytest.raises(TooLarge):
        feed(body, bomb, 65536)
    assert body.size <= 2**20 + 1


def test_not_kept_still_counted():
    body = Body(10**7, content_encoding="gzip", keep=False)
    assert feed(body, gzip.compress(DATA)) is None and body.size == len(DATA)


@pytest.mark.parametrize(
    ("encoding", "blob"),
    [("gzip", b"not gzip at all"), ("gzip", gzip.compress(DATA)[:-20]), ("deflate", b"\xff" * 9)],
)
def test_corrupt_or_truncated_is_protocol_error(encoding, blob):
    with pytest.raises(ProtocolError):
        feed(Body(10**7, content_encoding=encoding), blob)
