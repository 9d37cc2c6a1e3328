"""Bytes to text the way browsers decide, for `Result.text` and the ``html`` processor.

A byte-order mark, then the charset of the Content-Type header, then ``<meta
charset>`` or ``<meta http-equiv>`` in the first 4 KiB, then UTF-8 if the bytes
are valid UTF-8, else windows-1252. WHATWG's aliases are applied (a page
labelled ISO-8859-1 or ASCII is decoded as windows-1252, as every browser does).
"""

from __future__ import annotations

import codecs
import re

#: How far into the body a charset declaration is looked for (browsers use 1024 bytes).
META_SCAN = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
#: WHATWG encoding labels that differ from Python's codecs of the same name.
_WHATWG = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _codec(label: str, *, from_meta: bool = False) -> str | None:
    """Python's codec name for an encoding label, or None when it is unknown."""
    label = label.strip().lower()
    label = _WHATWG.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page cannot declare UTF-16 in a <meta> it could only be read as ASCII-compatible.
    if from_meta and name.startswith("utf-16"):
        return "utf-8"
    return name


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str, str]:
    """Decode an HTML body as a browser would.

    Returns:
        ``(text, charset, source)``: the charset is a Python codec name and the
        source one of ``"bom"``, ``"header"``, ``"meta"``, ``"utf-8"`` (the
        bytes were valid UTF-8) or ``"fallback"`` (windows-1252).
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace"), name, "bom"
    declared = _HEADER_CHARSET.search(content_type) if content_type else None
    codec = _codec(declared.group(1)) if declared else None
    if codec:
        return body.decode(codec, "replace"), codec, "header"
    meta = _META_CHARSET.search(body, 0, META_SCAN)
    codec = _codec(meta.group(1).decode("ascii"), from_meta=True) if meta else None
    if codec:
        return body.decode(codec, "replace"), codec, "meta"
    try:
        return body.decode("utf-8"), "utf-8", "utf-8"
    except UnicodeDecodeError:
        return body.decode("cp1252", "replace"), "cp1252", "fallback"
