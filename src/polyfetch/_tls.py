"""The one TLS client context every backend uses, so verification behaves the same everywhere."""

from __future__ import annotations

import ssl

from polyfetch.errors import ConfigError


def client_context(verify: bool = True, ca_bundle: str | None = None) -> ssl.SSLContext:
    """Verify against the system store by default, or ``ca_bundle``; or not at all."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA bundle {ca_bundle!r}: {exc}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
