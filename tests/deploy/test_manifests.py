"""deploy/: the compose file, Kubernetes manifests, systemd unit and image definition name only
paths, ports and files that exist in a kit made by ``fedcore provision parties/federation.toml``.

No container engine or cluster is needed: the files are parsed and every reference is resolved
against a freshly provisioned kit. The health probe they all use runs for real against a gRPC
node serving the kit's certificate on loopback.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FEDERATION = ROOT / "parties" / "federation.toml"
IN_CONTAINER_CONFIG = "/etc/fedcore/party.toml"


IN_CONTAINER_STATE = "/var/lib/fedcore"


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """A kit made as deploy/README.md says for containers: API on loopback TCP, state on a volume."""
    out = tmp_path_factory.mktemp("deploy") / "kit"
    command = [
        sys.executable,
        "-m",
        "fedcore.cli",
        "provision",
        str(FEDERATION),
        "--out",
        str(out),
        "--control",
        "tcp",
    ]
    done = subprocess.run(
        [*command, "--state-dir", IN_CONTAINER_STATE], capture_output=True, text=True, timeout=120
    )
    if "unrecognized arguments: --state-dir" in done.stderr:  # the README's one-line edit instead
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        for config in out.glob("*/party.toml"):
            text = config.read_text().replace('dir = "state"', f'dir = "{IN_CONTAINER_STATE}"')
            config.write_text(text)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def federation() -> dict[str, dict]:
    doc = tomllib.loads(FEDERATION.read_text())
    return {party["id"]: party for party in doc["party"]}


def party_toml(kit: Path, party: str) -> dict:
    return tomllib.loads((kit / party / "party.toml").read_text())


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


_VAR = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} over a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "-":
            return arg
        raise AssertionError(f"compose needs ${name}: {arg}")

    return _VAR.sub(one, value)


# ------------------------------------------------------------------------------------ compose


@pytest.fixture(scope="module")
def compose(kit: Path) -> dict:
    protocols = party_toml(kit, "alice")["policy"]["scripts"][0]
    env = {
        "FEDCORE_KIT": str(kit),
        "FEDCORE_PROTOCOLS": protocols,
        "FEDCORE_UID": "1000",
        "FEDCORE_GID": "1000",
        "FEDCORE_STATE": str(kit.parent / "state"),
    }
    return interpolate(yaml.safe_load((DEPLOY / "compose.yaml").read_text()), env)


def mounts(service: dict, *, writable: bool = False) -> dict[str, Path]:
    """Container target -> host source (resolved from the compose file's folder) of the read-only
    bind mounts, or of the writable ones."""
    out = {}
    for volume in service["volumes"]:
        assert volume["type"] == "bind", volume
        if volume["read_only"] is not writable:
            out[volume["target"]] = (DEPLOY / volume["source"]).resolve()
    return out


def host_path(container_path: str, table: dict[str, Path]) -> Path:
    for target, source in sorted(table.items(), key=lambda item: -len(item[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / os.path.relpath(container_path, target)
    raise AssertionError(f"{container_path} is not inside any mount {sorted(table)}")


def test_compose_runs_every_party_of_the_federation(compose, federation):
    assert set(compose["services"]) == set(federation)


@pytest.mark.parametrize("party", ["alice", "bob", "carol"])
def test_compose_mounts_the_partys_kit_read_only(compose, kit, party):
    service = compose["services"][party]
    table = mounts(service)
    assert table["/etc/fedcore"] == (kit / party).resolve()
    config = party_toml(kit, party)
    assert config["party"]["id"] == party
    # every file the daemon and the probe open, seen through the mounts
    for arg in [*service["command"], *service["healthcheck"]["test"]]:
        if arg.startswith("/"):
            assert host_path(arg, table).is_file(), arg
    for name in config["tls"].values():
        assert host_path(f"/etc/fedcore/{name}", table).is_file(), name
    for scripts in config["policy"]["scripts"]:
        assert scripts in table, f"[policy] scripts {scripts} is not mounted in the container"
        assert table[scripts] == Path(scripts).resolve() and table[scripts].is_dir()
        assert list(table[scripts].glob("*.py")), "no protocol scripts in the mounted folder"


@pytest.mark.parametrize("party", ["alice", "bob", "carol"])
def test_compose_gives_each_party_one_writable_state_folder_of_its_own(compose, kit, party):
    config = party_toml(kit, party)
    assert config["state"]["dir"] == IN_CONTAINER_STATE
    writable = mounts(compose["services"][party], writable=True)
    assert list(writable) == [IN_CONTAINER_STATE]
    others = {mounts(compose["services"][p], writable=True)[IN_CONTAINER_STATE] for p in compose["services"]}
    assert len(others) == len(compose["services"])  # no two parties share a job store


@pytest.mark.parametrize("party", ["alice", "bob", "carol"])
def test_compose_ports_match_federation_and_kit(compose, kit, federation, party):
    service, config, spec = compose["services"][party], party_toml(kit, party), federation[party]
    labels = service["labels"]
    assert labels["org.fedcore.party"] == party
    listen, control = port_of(config["party"]["listen"]), port_of(config["party"]["control"])
    assert int(labels["org.fedcore.peer-port"]) == spec["peer_port"] == listen
    assert int(labels["org.fedcore.control-port"]) == spec["control_port"] == control
    for peer, address in config["peers"].items():
        assert port_of(address) == federation[peer]["peer_port"]
    # the kit binds loopback addresses, which only the host's network namespace shares
    if config["party"]["listen"].startswith("127."):
        assert service["network_mode"] == "host"


def test_compose_service_is_locked_down(compose):
    for service in compose["services"].values():
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert not service["user"].startswith("0:")
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


# ------------------------------------------------------------------------------------ image


def test_containerfile_is_slim_non_root_and_serves_the_mounted_config():
    text = (DEPLOY / "Containerfile").read_text()
    assert (DEPLOY / "Dockerfile").resolve() == (DEPLOY / "Containerfile").resolve()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms and all(image.endswith("-slim") for image in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["fedcore", "party", "serve"]' in lines
    assert f'CMD ["{IN_CONTAINER_CONFIG}"]' in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert f'VOLUME ["{IN_CONTAINER_STATE}"]' in lines
    assert f"FEDCORE_CONFIG={IN_CONTAINER_CONFIG}" in text  # `docker exec ... fedcore job list`
    for line in lines:  # every COPY from the build context names something that exists
        if line.startswith("COPY ") and "--from=" not in line:
            sources = [w for w in shlex.split(line)[1:-1] if not w.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source


# ------------------------------------------------------------------------------------ kubernetes


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def generator_files(generator: dict, kit: Path) -> dict[str, Path]:
    """key -> kit file, for ``key=kit/<party>/<file>`` entries (kit/ is the provisioned kit)."""
    out = {}
    for entry in generator["files"]:
        key, _, rel = entry.partition("=")
        assert rel.startswith("kit/"), entry
        out[key] = kit / rel[len("kit/") :]
    return out


def test_kustomization_builds_secret_and_configmap_from_the_kit(k8s, kit):
    kustomization = k8s["Kustomization"]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file()
    (secret,) = kustomization["secretGenerator"]
    (config_map,) = kustomization["configMapGenerator"]
    secret_files, config_files = generator_files(secret, kit), generator_files(config_map, kit)
    for path in [*secret_files.values(), *config_files.values()]:
        assert path.is_file(), path
    assert "ca.key" not in {p.name for p in secret_files.values()}
    assert set(config_files) == {"party.toml"}
    party = config_files["party.toml"].parent.name
    config = party_toml(kit, party)
    assert set(secret_files) == {*config["tls"].values(), config["api"]["token_file"]}


def test_deployment_mounts_every_file_party_toml_names(k8s, kit):
    kustomization = k8s["Kustomization"]
    names = {
        kustomization["secretGenerator"][0]["name"]: ("secret", kustomization["secretGenerator"][0]),
        kustomization["configMapGenerator"][0]["name"]: ("configMap", kustomization["configMapGenerator"][0]),
    }
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volume_mounts = {m["name"]: m for m in container["volumeMounts"]}
    kit_mount = next(m for m in volume_mounts.values() if m["mountPath"] == "/etc/fedcore")
    assert kit_mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == kit_mount["name"])
    visible = {}
    for source in volume["projected"]["sources"]:
        ((kind, ref),) = source.items()
        assert names[ref["name"]][0] == kind
        keys = generator_files(names[ref["name"]][1], kit)
        for item in ref["items"]:
            visible[item["path"]] = keys[item["key"]]
    party = visible["party.toml"].parent.name
    config = party_toml(kit, party)
    for name in config["tls"].values():
        assert visible[name].is_file()
    assert container["args"] == [IN_CONTAINER_CONFIG]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "fedcore-healthcheck" and IN_CONTAINER_CONFIG in command
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert k8s["Deployment"]["spec"]["replicas"] == 1
    assert k8s["Deployment"]["spec"]["strategy"]["type"] == "Recreate"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {e["name"]: e["value"] for e in container["env"]}["FEDCORE_CONFIG"] == IN_CONTAINER_CONFIG
    token = config["api"]["token_file"]
    assert visible[token].is_file() and visible[token].name == "operator.token"


def test_k8s_state_lives_on_a_persistent_volume(k8s, kit):
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    party = k8s["Deployment"]["metadata"]["name"].removeprefix("fedcore-")
    state = party_toml(kit, party)["state"]["dir"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == state]
    assert not mount.get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = k8s["PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "pvc.yaml" in k8s["Kustomization"]["resources"]


def test_k8s_ports_match_the_kit(k8s, kit, federation):
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (peer,) = [p for p in container["ports"] if p["name"] == "peer"]
    party = k8s["Deployment"]["metadata"]["name"].removeprefix("fedcore-")
    listen = port_of(party_toml(kit, party)["party"]["listen"])
    assert peer["containerPort"] == federation[party]["peer_port"] == listen
    service = k8s["Service"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "peer" and service_port["port"] == federation[party]["peer_port"]
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    control = port_of(party_toml(kit, party)["party"]["control"])
    assert control not in [p["containerPort"] for p in container["ports"]]


# ------------------------------------------------------------------------------------ systemd, ray


def test_systemd_unit_serves_the_instance_kit_with_hardening(kit):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "fedcore-party@.service")
    service = unit["Service"]
    config = "/etc/fedcore/%i/party.toml"
    assert service["ExecStart"].split()[1:] == ["party", "serve", config]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert service[key] == value, key
    assert "/etc/fedcore/%i" in service["ReadOnlyPaths"].split()
    assert service["StateDirectory"] == "fedcore/%i"  # /var/lib/fedcore/<party>: --state-dir
    for party in ("alice", "bob", "carol"):  # the instance's folder is a kit party folder
        folder = kit / party
        assert (folder / Path(config).name).is_file()
        for name in party_toml(kit, party)["tls"].values():
            assert (folder / name).is_file()


def test_ray_cluster_example_installs_the_wheel_built_here_with_ray():
    cluster = yaml.safe_load((DEPLOY / "ray" / "cluster.yaml").read_text())
    ((remote, local),) = cluster["file_mounts"].items()
    assert local == "./dist"
    setup = " ".join(cluster["setup_commands"])
    assert f"{remote}/fedcore-*.whl" in setup and "[ray]" in setup
    head = cluster["provider"]["head_ip"]
    assert any(f"--address={head}:6379" in c for c in cluster["worker_start_ray_commands"])


# ------------------------------------------------------------------------------------ the probe


def run_probe(config: Path, address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), str(config), "--address", address, "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthcheck_asks_the_grpc_health_service_over_mtls(kit):
    from fedcore.transport.grpc import PeerNode, TlsFiles, TlsMaterial

    folder = kit / "alice"
    tls = TlsMaterial.from_files(TlsFiles(folder / "ca.pem", folder / "party.pem", folder / "party.key"))
    node = PeerNode("alice", "127.0.0.1:0", {}, tls)
    port = node.start()
    try:
        healthy = run_probe(folder / "party.toml", f"127.0.0.1:{port}")
        assert healthy.returncode == 0, healthy.stderr
        assert "SERVING" in healthy.stdout
        # bob's certificate cannot vouch for alice's daemon: the server identity is checked
        wrong = run_probe(kit / "bob" / "party.toml", f"127.0.0.1:{port}")
        assert wrong.returncode == 1
    finally:
        node.stop(grace_s=0)
    gone = run_probe(folder / "party.toml", f"127.0.0.1:{port}")
    assert gone.returncode == 1 and "unhealthy" in gone.stderr
    assert "PRIVATE KEY" not in gone.stderr + healthy.stdout + wrong.stderr


def test_probe_dials_loopback_for_a_wildcard_bind():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fedcore_healthcheck", DEPLOY / "healthcheck.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.dial_address("0.0.0.0", 7101) == "127.0.0.1:7101"
    assert probe.dial_address("::", 7101) == "[::1]:7101"
    assert probe.dial_address("127.0.0.1", 7102) == "127.0.0.1:7102"
    assert probe.dial_address("alice.example", 7101) == "alice.example:7101"


# ------------------------------------------------------------------------------------ installs


DOCS = [
    ROOT / "README.md",
    ROOT / "parties" / "README.md",
    *sorted(p for p in DEPLOY.rglob("*") if p.is_file()),
]
FROM_PYPI = re.compile(r"""^['"]?fedcore(\[[\w,]*\])?([=<>~!].*)?['"]?$""")


def test_nothing_installs_fedcore_from_pypi():
    """fedcore is not on PyPI (another project owns the name): installs name a wheel or a tree."""
    for path in DOCS:
        if path.suffix in (".png", ".pyc"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for command in re.findall(r"pip3? install ([^`;&|]*)", line):
                for word in command.split():
                    assert not FROM_PYPI.match(word), f"{path.name}:{number}: {line.strip()}"


def _third_party_imports(path: Path, seen: set[Path]) -> set[str]:
    """Top-level modules a file imports (at any depth of its code), following fedcore's own."""
    import ast

    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] != "fedcore":
                found.add(name.split(".")[0])
                continue
            module = ROOT / Path(*name.split("."))
            for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                if candidate.is_file():
                    found |= _third_party_imports(candidate, seen)
    return found


def test_the_image_default_extras_run_every_bundled_protocol():
    import importlib.metadata as md

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    default = re.search(r'^ARG EXTRAS="([^"]*)"', (DEPLOY / "Containerfile").read_text(), re.M).group(1)
    wanted = [*pyproject["dependencies"]]
    for extra in filter(None, default.split(",")):
        wanted += pyproject["optional-dependencies"][extra]
    installed = {re.split(r"[\[<>=!~ ;]", req)[0].lower().replace("_", "-") for req in wanted}
    dists = md.packages_distributions()
    chosen_by_config = {"ray"}  # the ray runtime backend: [runtime] backend = "ray" and EXTRAS=torch,ray
    for script in sorted((ROOT / "protocols").glob("*.py")):
        for module in _third_party_imports(script, set()):
            if module in sys.stdlib_module_names or module in {"__future__", *chosen_by_config}:
                continue
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            assert names & installed, f"{script.name} needs {module} ({names}), not in EXTRAS={default!r}"
