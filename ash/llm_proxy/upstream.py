"""Where the proxy sends model requests, and with which credential.

Credential kinds (the Ash credential `type`), and how the proxy uses them:

- `anthropic`: the key goes in `x-api-key` to `base_url` (default https://api.anthropic.com).
- `custom`: the key goes in `Authorization: Bearer` (gateways, OAuth tokens, ANTHROPIC_AUTH_TOKEN).
- `openai`: an OpenAI key cannot call the Anthropic Messages API. It is only usable with an
  explicit `base_url` (an Anthropic-compatible gateway that takes it as a Bearer token); without
  one every request is refused with a 400 that says so.
- `bedrock`: not supported by this proxy (Bedrock needs SigV4 signing and its own
  invoke/event-stream wire format); every request is refused with a 400 that says so.
- no key but an explicit `base_url`: requests go there without credentials (a keyless gateway).
- `local`: no credential; the built-in local demo model answers (embedded mode).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.anthropic.com"


class CredentialKind(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    CUSTOM = "custom"
    BEDROCK = "bedrock"
    LOCAL = "local"


class UpstreamConfigError(ValueError):
    """A credential/base URL combination that can never work."""


@dataclass(frozen=True)
class Upstream:
    """The model API behind one proxy; `api_key` never appears in repr or logs."""

    kind: CredentialKind = CredentialKind.LOCAL
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None  # None: DEFAULT_BASE_URL
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0  # a gap between two stream chunks; the API pings meanwhile
    write_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CredentialKind(self.kind))
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UpstreamConfigError(f"base URL must be http(s)://host[:port]: {self.base_url!r}")

    @classmethod
    def local(cls) -> Upstream:
        return cls(CredentialKind.LOCAL)

    @property
    def is_local(self) -> bool:
        return self.kind is CredentialKind.LOCAL

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def problem(self) -> str | None:
        """Why no request can be served with this configuration (None when it can)."""
        if self.kind is CredentialKind.BEDROCK:
            return ("Bedrock credentials are not supported by the Ash model proxy: it speaks the "
                    "Anthropic Messages API only. Use an anthropic or custom credential.")
        if self.kind is CredentialKind.OPENAI and self.base_url is None:
            return ("An OpenAI credential cannot serve the Anthropic Messages API. Use an "
                    "anthropic credential, or set ANTHROPIC_BASE_URL to an Anthropic-compatible "
                    "gateway that accepts this key.")
        # Keyless is fine only for an explicit base URL (a local gateway that needs no key).
        if self.kind is not CredentialKind.LOCAL and not self.api_key and self.base_url is None:
            return f"The {self.kind.value} credential has an empty key."
        return None

    def auth_headers(self) -> dict[str, str]:
        if self.kind is CredentialKind.ANTHROPIC and self.api_key:
            return {"x-api-key": self.api_key}
        if self.kind in (CredentialKind.CUSTOM, CredentialKind.OPENAI) and self.api_key:
            return {"authorization": f"Bearer {self.api_key}"}
        return {}


def upstream_resolve(*, credential_type: str | None = None, credential_key: str | None = None,
                     base_url: str | None = None, env: Mapping[str, str] | None = None,
                     allow_local: bool = True) -> Upstream:
    """Pick the upstream: the session's credential, else the server's environment, else local.

    Environment: ANTHROPIC_API_KEY (x-api-key), ANTHROPIC_AUTH_TOKEN (Bearer), ANTHROPIC_BASE_URL
    (alone: a keyless gateway).
    Raises UpstreamConfigError when nothing is configured and `allow_local` is False.
    """
    env = os.environ if env is None else env
    base_url = base_url or env.get("ANTHROPIC_BASE_URL") or None
    if credential_type:
        return Upstream(CredentialKind(credential_type), credential_key, base_url)
    if env.get("ANTHROPIC_API_KEY"):
        return Upstream(CredentialKind.ANTHROPIC, env["ANTHROPIC_API_KEY"], base_url)
    if env.get("ANTHROPIC_AUTH_TOKEN"):
        return Upstream(CredentialKind.CUSTOM, env["ANTHROPIC_AUTH_TOKEN"], base_url)
    if base_url:
        return Upstream(CredentialKind.CUSTOM, None, base_url)  # keyless gateway
    if not allow_local:
        raise UpstreamConfigError("no model credential configured (set ANTHROPIC_API_KEY or "
                                  "create a credential)")
    return Upstream.local()
