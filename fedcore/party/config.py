"""``party.toml`` -> frozen dataclasses, validated with errors naming file, key and expected form."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcore.errors import ConfigError
from fedcore.netaddr import is_loopback
from fedcore.transport.base import PARTY_NAME

RUNTIME_BACKENDS = ("inline", "threads", "processes", "ray")
TLS_KEYS = ("ca", "cert", "key")
SECTIONS = ("party", "tls", "peers", "runtime", "policy", "limits", "revocation", "data", "state", "api")


@dataclass(frozen=True)
class Endpoint:
    """A ``host:port`` address, or a unix socket path when ``unix_path`` is set."""

    host: str = ""
    port: int = 0
    unix_path: Path | None = None

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsPaths:
    """Paths of the CA certificate, the party's certificate and its private key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class RuntimeConfig:
    """The party's local task runtime (``fedcore.runtime.make_runtime`` arguments)."""

    backend: str = "processes"
    workers: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class PolicyConfig:
    """Which protocol scripts may run here, and which parties may start jobs here."""

    scripts: tuple[Path, ...] = ()
    initiators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Transport and job limits: everything a peer can make the daemon hold is bounded here."""

    max_value_bytes: int = 2 * 1024**3
    mailbox_bytes: int = 4 * 1024**3
    heartbeat_s: float = 1.0
    peer_timeout_s: float = 5.0
    job_timeout_s: float = 3600.0
    pending_bytes: int = 64 * 1024**2
    peer_streams: int = 16
    stream_idle_s: float = 30.0
    keepalive_s: float = 30.0
    connection_age_s: float = 3600.0
    pending_proposals: int = 64
    pending_proposals_per_peer: int = 16
    proposal_ttl_s: float = 60.0


@dataclass(frozen=True)
class Revocation:
    """Certificates this party refuses although the CA signed them (``[revocation]``)."""

    ids: tuple[str, ...] = ()
    serials: tuple[int, ...] = ()


@dataclass(frozen=True)
class PartyConfig:
    """One party's whole configuration, loaded from ``path``."""

    path: Path
    party_id: str
    federation: str
    listen: Endpoint
    control: Endpoint
    tls: TlsPaths
    peers: Mapping[str, str] = field(default_factory=dict)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    limits: Limits = field(default_factory=Limits)
    data: Mapping[str, Path] = field(default_factory=dict)
    state_dir: Path = Path("state")
    api_token_file: Path | None = None
    revocation: Revocation = field(default_factory=Revocation)


class TomlReader:
    """Typed access to one TOML file's values; every mistake becomes a ConfigError."""

    def __init__(self, path: Path, doc: dict[str, Any]):
        self.path = path
        self.doc = doc

    @classmethod
    def load(cls, path: str | Path, what: str) -> TomlReader:
        """Read a TOML file; a missing file or bad TOML is a ConfigError naming ``what`` it is."""
        path = Path(path).resolve()
        if not path.is_file():
            raise ConfigError(f"{what} {path} does not exist", file=str(path))
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from None
        return cls(path, doc)

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=str(self.path), key=key)

    def table(self, name: str, *, required: bool = True) -> dict[str, Any]:
        value = self.doc.get(name)
        if value is None:
            if required:
                raise self.fail(name, f"missing section [{name}]")
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table [{name}], got {type(value).__name__}")
        return value

    def get(
        self,
        section: str,
        key: str,
        kind: type | tuple[type, ...],
        expected: str,
        default: Any = ...,
        *,
        table: dict[str, Any] | None = None,
    ) -> Any:
        table = self.table(section) if table is None else table
        dotted = f"{section}.{key}"
        if key not in table:
            if default is ...:
                raise self.fail(dotted, f"missing key; expected {expected}")
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(dotted, f"expected {expected}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(dotted, f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def file(self, dotted: str, raw: str, *, folder_ok: bool = False) -> Path:
        path = (self.path.parent / raw).resolve() if not Path(raw).is_absolute() else Path(raw)
        if not path.exists():
            raise self.fail(
                dotted,
                f"{raw!r} does not exist (resolved to {path}); paths are "
                "relative to the config file's folder",
            )
        if not folder_ok and not path.is_file():
            raise self.fail(dotted, f"{raw!r} is not a file")
        return path

    def check_keys(self, section: str, table: dict[str, Any], known: tuple[str, ...]) -> None:
        for key in table:
            if key not in known:
                raise self.fail(f"{section}.{key}", f"unknown key; [{section}] takes {', '.join(known)}")


def load_config(path: str | Path) -> PartyConfig:
    """Read and validate a ``party.toml``; checks that every referenced file exists.

    Raises:
        ConfigError: naming the file, the dotted key and the expected form.
    """
    r = TomlReader.load(path, "party config")
    path, doc = r.path, r.doc
    for name in doc:
        if name not in SECTIONS:
            raise r.fail(name, f"unknown section; a party config has [{'], ['.join(SECTIONS)}]")
    party = r.table("party")
    r.check_keys("party", party, ("id", "federation", "listen", "control"))
    party_id = check_name(r, "party.id", r.get("party", "id", str, 'a party name like "alice"'))
    return PartyConfig(
        path=path,
        party_id=party_id,
        federation=r.get("party", "federation", str, 'a federation name like "demo"'),
        listen=parse_endpoint(r, "party.listen", r.get("party", "listen", str, '"host:port"'), unix=False),
        control=_control(r),
        tls=_tls(r),
        peers=_peers(r, party_id),
        runtime=_runtime(r),
        policy=_policy(r),
        limits=_limits(r),
        data=_data(r),
        state_dir=_state_dir(r),
        api_token_file=_api_token(r),
        revocation=_revocation(r),
    )


def check_name(r: TomlReader, dotted: str, value: str) -> str:
    if not PARTY_NAME.match(value):
        raise r.fail(
            dotted,
            f"bad party name {value!r}: expected 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter",
        )
    return value


def parse_endpoint(r: TomlReader, dotted: str, raw: str, *, unix: bool) -> Endpoint:
    """Parse ``host:port`` (or ``unix:PATH`` when ``unix``)."""
    if unix and raw.startswith("unix:"):
        rest = raw[len("unix:") :]
        if not rest:
            raise r.fail(dotted, 'expected "unix:PATH" with a socket path')
        return Endpoint(unix_path=(r.path.parent / rest).resolve())
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        form = '"host:port" or "unix:PATH"' if unix else '"host:port"'
        raise r.fail(dotted, f"expected {form}, got {raw!r}")
    return Endpoint(host=host, port=int(port))


def _control(r: TomlReader) -> Endpoint:
    raw = r.get("party", "control", str, '"127.0.0.1:PORT" or "unix:PATH"')
    endpoint = parse_endpoint(r, "party.control", raw, unix=True)
    if endpoint.unix_path is None and not is_loopback(endpoint.host):
        raise r.fail(
            "party.control",
            f"the control endpoint must be on loopback (127.0.0.1, ::1, "
            f"localhost) or a unix socket, got {raw!r}: it is never for peers",
        )
    return endpoint


def _tls(r: TomlReader) -> TlsPaths:
    tls = r.table("tls")
    r.check_keys("tls", tls, ("ca", "cert", "key"))
    paths = {k: r.file(f"tls.{k}", r.get("tls", k, str, f"a path to the {k} PEM file")) for k in TLS_KEYS}
    for key in ("ca", "cert"):
        if b"-----BEGIN CERTIFICATE-----" not in paths[key].read_bytes():
            raise r.fail(f"tls.{key}", f"{paths[key]} is not a PEM certificate")
    if b"PRIVATE KEY-----" not in paths["key"].read_bytes():
        raise r.fail("tls.key", f"{paths['key']} is not a PEM private key")
    return TlsPaths(**paths)


def _peers(r: TomlReader, party_id: str) -> dict[str, str]:
    peers = r.table("peers", required=False)
    out: dict[str, str] = {}
    for peer, address in peers.items():
        dotted = f"peers.{peer}"
        check_name(r, dotted, peer)
        if peer == party_id:
            raise r.fail(dotted, "a party is not its own peer: remove it from [peers]")
        if not isinstance(address, str):
            raise r.fail(dotted, f'expected "host:port", got {address!r}')
        parse_endpoint(r, dotted, address, unix=False)
        out[peer] = address
    return out


def _runtime(r: TomlReader) -> RuntimeConfig:
    table = r.table("runtime", required=False)
    r.check_keys("runtime", table, ("backend", "workers", "address"))
    backend = r.get("runtime", "backend", str, " | ".join(RUNTIME_BACKENDS), "processes", table=table)
    if backend not in RUNTIME_BACKENDS:
        raise r.fail("runtime.backend", f"expected one of {', '.join(RUNTIME_BACKENDS)}, got {backend!r}")
    workers = r.get("runtime", "workers", int, "a positive integer", None, table=table)
    if workers is not None and workers < 1:
        raise r.fail("runtime.workers", f"expected a positive integer, got {workers}")
    address = r.get("runtime", "address", str, '"host:port" of a Ray cluster', None, table=table)
    return RuntimeConfig(backend, workers, address)


def _policy(r: TomlReader) -> PolicyConfig:
    table = r.table("policy")
    r.check_keys("policy", table, ("scripts", "initiators"))
    scripts = r.get("policy", "scripts", list, "a list of script files or folders", table=table)
    initiators = r.get("policy", "initiators", list, "a list of party names", table=table)
    paths = []
    for i, raw in enumerate(scripts):
        if not isinstance(raw, str):
            raise r.fail(f"policy.scripts[{i}]", f"expected a path string, got {raw!r}")
        paths.append(r.file(f"policy.scripts[{i}]", raw, folder_ok=True))
    for i, name in enumerate(initiators):
        if not isinstance(name, str):
            raise r.fail(f"policy.initiators[{i}]", f"expected a party name, got {name!r}")
        check_name(r, f"policy.initiators[{i}]", name)
    return PolicyConfig(tuple(paths), tuple(initiators))


def _limits(r: TomlReader) -> Limits:
    table = r.table("limits", required=False)
    defaults = Limits()
    names = tuple(defaults.__dataclass_fields__)
    r.check_keys("limits", table, names)
    values: dict[str, Any] = {}
    for name in names:
        default = getattr(defaults, name)
        if isinstance(default, int):
            value = r.get("limits", name, int, "a positive integer (bytes)", default, table=table)
        else:
            expected = "a positive number of seconds"
            value = float(r.get("limits", name, (int, float), expected, default, table=table))
        if not (value > 0 and math.isfinite(value)):
            raise r.fail(f"limits.{name}", f"expected a positive number, got {value!r}")
        values[name] = value
    if values["peer_timeout_s"] <= values["heartbeat_s"]:
        raise r.fail("limits.peer_timeout_s", "expected more than limits.heartbeat_s (a few heartbeats)")
    return Limits(**values)


def _revocation(r: TomlReader) -> Revocation:
    table = r.table("revocation", required=False)
    r.check_keys("revocation", table, ("ids", "serials"))
    ids = r.get("revocation", "ids", list, "a list of party names", [], table=table)
    serials = r.get(
        "revocation", "serials", list, 'a list of hex serial numbers like "0x1f2e"', [], table=table
    )
    for i, name in enumerate(ids):
        if not isinstance(name, str):
            raise r.fail(f"revocation.ids[{i}]", f"expected a party name, got {name!r}")
        check_name(r, f"revocation.ids[{i}]", name)
    out = []
    for i, raw in enumerate(serials):
        try:
            out.append(int(raw, 16))
        except (TypeError, ValueError):
            raise r.fail(
                f"revocation.serials[{i}]", f'expected a hex serial like "0x1f2e", got {raw!r}'
            ) from None
    return Revocation(tuple(ids), tuple(out))


def _data(r: TomlReader) -> dict[str, Path]:
    table = r.table("data", required=False)
    out = {}
    for name, raw in table.items():
        if not isinstance(raw, str):
            raise r.fail(f"data.{name}", f"expected a path to a .npz or .csv file, got {raw!r}")
        out[name] = r.file(f"data.{name}", raw)
    return out


def _state_dir(r: TomlReader) -> Path:
    """``[state] dir``: the job store and per-job folders; default ``state/`` beside party.toml."""
    table = r.table("state", required=False)
    r.check_keys("state", table, ("dir",))
    raw: str = r.get("state", "dir", str, "a folder path", "state", table=table)
    return (r.path.parent / raw).resolve()


def _api_token(r: TomlReader) -> Path | None:
    """``[api] token_file``: the operator credential; required when ``control`` is TCP."""
    table = r.table("api", required=False)
    r.check_keys("api", table, ("token_file",))
    raw = r.get("api", "token_file", str, "a path to a token file (mode 0600)", None, table=table)
    tcp = not str(r.get("party", "control", str, "")).startswith("unix:")
    if raw is None:
        if tcp:
            raise r.fail(
                "api.token_file",
                "a TCP control endpoint needs an operator credential: set "
                '[api] token_file = "operator.token" (fedcore provision writes '
                'one), or use control = "unix:control.sock"',
            )
        return None
    if not tcp and not (r.path.parent / raw).exists():
        return None  # on the unix socket the token is unused; a kit copied without it still serves
    path = r.file("api.token_file", raw)
    if path.stat().st_mode & 0o037:  # group read is allowed: k8s projects Secrets 0440 to an fsGroup
        raise r.fail(
            "api.token_file",
            f"{path} is readable or writable by other users (mode "
            f"{path.stat().st_mode & 0o777:o}): chmod 600 {path}",
        )
    return path
