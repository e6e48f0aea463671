"""deploy/ and scripts/: the files parse, and say what replnode and the platforms expect.

Docker and Kubernetes are not run here; the manifests are checked against the Kubernetes API
schemas (kubernetes-validate), container commands against replnode's own flag parser, the
Dockerfile's instructions and COPY sources, the systemd unit's keys (and `systemd-analyze
verify` where present), and the shell scripts with `bash -n`.
"""

from __future__ import annotations

import configparser
import copy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replnode.cli import parse_args

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# ---------------------------------------------------------------------- compose


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_has_three_self_initiating_members():
    doc = compose()
    services = doc["services"]
    assert sorted(services) == ["m1", "m2", "m3"]
    for name, svc in services.items():
        cmd = svc["command"]
        assert "--bind_ip_all" in cmd and "--initiate" in cmd
        assert flag(cmd, "--advertise") == f"{name}:27017"
        assert flag(cmd, "--members") == "m1:27017,m2:27017,m3:27017"
        volume = svc["volumes"][0].split(":")[0]
        assert volume in doc["volumes"]
        assert svc["volumes"][0].endswith(":/data/db") and flag(cmd, "--dbpath") == "/data/db"
        assert "/data/db" in (DEPLOY / "Dockerfile").read_text()
        assert (
            svc["healthcheck"]["test"][1] == "replctl" and "--ready" in svc["healthcheck"]["test"]
        )
        options = parse_args(list(cmd))  # replnode accepts the command line as written
        assert options.initiate and options.advertise == f"{name}:27017"
        assert options.members == ("m1:27017", "m2:27017", "m3:27017")


def test_compose_build_points_at_the_dockerfile():
    for svc in compose()["services"].values():
        context = (DEPLOY / svc["build"]["context"]).resolve()
        assert context == ROOT
        assert (context / svc["build"]["dockerfile"]).is_file()
    ports = [svc["ports"][0] for svc in compose()["services"].values()]
    assert ports == ["127.0.0.1:27017:27017", "127.0.0.1:27018:27017", "127.0.0.1:27019:27017"]


# ---------------------------------------------------------------------- kubernetes


def test_k8s_manifests_have_the_required_kinds_and_fields():
    assert sorted(d["kind"] for d in k8s_docs()) == [
        "PodDisruptionBudget",
        "Service",
        "Service",
        "StatefulSet",
    ]
    (sts,) = by_kind("StatefulSet")
    headless = next(s for s in by_kind("Service") if s["spec"].get("clusterIP") == "None")
    spec = sts["spec"]
    assert spec["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert spec["podManagementPolicy"] == "Parallel"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert headless["spec"]["selector"].items() <= labels.items()
    (pdb,) = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert (
        spec["volumeClaimTemplates"][0]["metadata"]["name"] == container["volumeMounts"][0]["name"]
    )


def test_k8s_members_are_the_stateful_set_pod_names():
    (sts,) = by_kind("StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for e in container["env"]}
    args = [
        a.replace("$(POD_NAME)", "replnode-1").replace("$(POD_NAMESPACE)", "default")
        for a in container["args"]
    ]
    assert {"POD_NAME", "POD_NAMESPACE"} <= env
    svc = sts["spec"]["serviceName"]
    expected = tuple(
        f"{sts['metadata']['name']}-{i}.{svc}.default.svc.cluster.local:27017"
        for i in range(sts["spec"]["replicas"])
    )
    options = parse_args(args)
    assert options.members == expected
    assert options.advertise == expected[1] and options.initiate and options.bind_ip_all
    assert flag(args, "--dbpath") == container["volumeMounts"][0]["mountPath"]


def test_k8s_manifests_validate_against_the_api_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed")
    for doc in k8s_docs():
        kv.validate(doc, K8S_VERSION, strict=True)
    broken = copy.deepcopy(by_kind("StatefulSet")[0])
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSION, strict=True)


# ---------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return out


def test_dockerfile_parses_and_installs_the_package_as_non_root():
    ins = dockerfile_instructions()
    known = {
        "FROM",
        "ENV",
        "RUN",
        "WORKDIR",
        "COPY",
        "USER",
        "VOLUME",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "CMD",
        "ARG",
        "LABEL",
    }
    assert {word for word, _ in ins} <= known
    assert ins[0] == ("FROM", "python:3.11-slim")
    user = [rest for word, rest in ins if word == "USER"][-1]
    assert user not in ("root", "0")
    assert ("EXPOSE", "27017") in ins
    health = next(rest for word, rest in ins if word == "HEALTHCHECK")
    assert "/health" in health and health.split()[0].startswith("--")
    assert any(word == "RUN" and "pip install ." in rest for word, rest in ins)
    assert (ROOT / "pyproject.toml").is_file()  # the pip install target (the build context)
    entry = next(rest for word, rest in ins if word == "ENTRYPOINT")
    assert (
        entry == '["replnode"]'
        and 'replnode = "replnode.__main__:main"' in (ROOT / "pyproject.toml").read_text()
    )
    cmd = next(rest for word, rest in ins if word == "CMD")
    parse_args(yaml.safe_load(cmd))  # the default command is valid replnode flags


def test_dockerfile_copies_exist_and_are_not_ignored():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for word, rest in dockerfile_instructions():
        if word != "COPY":
            continue
        *sources, _dest = shlex.split(rest)
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} is missing"
            assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is dockerignored"


# ---------------------------------------------------------------------- systemd and YAML


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "replnode@.service").read_text())
    return parser


def test_systemd_unit_runs_replnode_with_the_instance_config():
    u = unit()
    exec_start = shlex.split(u["Service"]["ExecStart"])
    assert Path(exec_start[0]).name == "replnode"
    assert exec_start[1:] == ["--config", "/etc/replnode/%i.yaml"]
    assert u["Service"]["User"] not in ("root", "0")
    assert u["Service"]["StateDirectory"] == "replnode/%i"
    assert u["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path):
    text = (DEPLOY / "replnode@.service").read_text()
    replnode = Path(sys.executable).with_name("replnode")
    if not replnode.exists():
        pytest.skip("replnode console script not installed next to this python")
    (tmp_path / "replnode@.service").write_text(
        text.replace("/usr/local/bin/replnode", str(replnode))
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "replnode@rs1.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_example_yaml_is_accepted_by_replnode():
    doc = yaml.safe_load((DEPLOY / "replnode.yaml").read_text())
    assert {"net", "storage", "replication", "systemLog"} <= set(doc)
    options = parse_args(["--config", str(DEPLOY / "replnode.yaml")])
    assert options.port == doc["net"]["port"] == 27017
    assert options.repl_set == doc["replication"]["replSetName"]
    assert options.dbpath == doc["storage"]["dbPath"]
    assert options.oplog_size_mb == doc["replication"]["oplogSizeMB"]
    assert options.logpath == doc["systemLog"]["path"]
    assert options.bind_ip == ("127.0.0.1", "10.0.0.11")


# ---------------------------------------------------------------------- scripts


@pytest.mark.parametrize("name", ["book-example.sh", "netns-cluster.sh"])
def test_scripts_parse(name):
    path = ROOT / "scripts" / name
    done = subprocess.run(
        ["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert path.stat().st_mode & 0o111, f"{name} is not executable"
    if shutil.which("shellcheck"):
        lint = subprocess.run(
            ["shellcheck", "-S", "warning", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout
