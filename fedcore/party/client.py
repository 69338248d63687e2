"""The operator's client of a daemon's API (``fedcore job ...``, ``fedcore party status``), over httpx."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from fedcore import errors
from fedcore.errors import ConfigError, FedcoreError
from fedcore.party.config import PartyConfig

CONNECT_TIMEOUT_S = 5.0
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would bury progress


class ApiClient:
    """Calls the daemon of ``config`` at its ``control`` endpoint with the operator credential.

    Raises (from every call):
        ConfigError: no daemon answers there, or the token file cannot be read.
        FedcoreError subclasses: the daemon's error, rebuilt by its type name.
    """

    def __init__(self, config: PartyConfig, timeout_s: float = 60.0):
        self.endpoint = config.control
        headers = {}
        if config.control.unix_path is None:
            headers["Authorization"] = f"Bearer {_read_token(config)}"
            transport = httpx.HTTPTransport()
            base = f"http://{_host(config.control.host)}:{config.control.port}"
        else:
            transport = httpx.HTTPTransport(uds=str(config.control.unix_path))
            base = "http://fedcore"
        timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        self.http = httpx.Client(base_url=base, transport=transport, headers=headers, timeout=timeout)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise errors.Timeout(
                f"the daemon at {self.endpoint} did not answer {method} {path} in time"
            ) from None
        except (httpx.TransportError, OSError) as exc:
            raise ConfigError(
                f"no party daemon answers at the control endpoint {self.endpoint} ({exc}); "
                "start it with: fedcore party serve CONFIG",
                key="party.control",
            ) from None
        if response.status_code >= 400:
            raise _remote_error(response)
        return response.json()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _read_token(config: PartyConfig) -> str:
    if config.api_token_file is None:
        raise ConfigError("a TCP control endpoint needs [api] token_file", file=str(config.path))
    try:
        return config.api_token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the operator token {config.api_token_file}: {exc.strerror}",
            file=str(config.path),
            key="api.token_file",
        ) from None


def _remote_error(response: httpx.Response) -> FedcoreError:
    try:
        error = response.json()["error"]
        kind, message = str(error["type"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return FedcoreError(f"the daemon answered HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code == 401:
        return errors.AuthError(message)
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, FedcoreError):
        return cls(message)
    return FedcoreError(message)
