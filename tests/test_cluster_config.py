"""The cluster-launcher configs: valid for Ray's own schema and ``ray up``'s checks, and safe.

Validation uses ray/autoscaler/ray-schema.json from the installed Ray (the file ``ray up``
checks against), then Ray's own ``prepare_config`` + ``validate_config`` -- the offline part
of ``ray up``: defaults merged, node types and worker counts checked; no cloud is contacted.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray
import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"aws": ROOT / "cluster" / "config.yaml", "local": ROOT / "cluster" / "local.yaml"}
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


def load(name: str) -> dict:
    return yaml.safe_load(CONFIGS[name].read_text())


def pins() -> dict[str, str]:
    """The exact pins (``name==version``) of pyproject.toml's dependencies, by distribution name."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[\n(.*?)^\]", text, re.M | re.S).group(1)
    out = {}
    for dep in re.findall(r'"([^"]+)"', block):
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^,;\s]+)", dep.strip())
        if m:
            out[m.group(1).lower()] = m.group(0)
    return out


def start_commands(config: dict) -> dict[str, list[str]]:
    return {"head": config["head_start_ray_commands"], "worker": config["worker_start_ray_commands"]}


def ray_start(commands: list[str]) -> list[str]:
    """The `ray start` invocations among the commands, split into words."""
    found = []
    for cmd in commands:
        for part in re.split(r"&&|;", cmd):
            words = shlex.split(part)
            if words[:2] == ["ray", "start"]:
                found.append(words)
    return found


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_validates_against_rays_schema(name, schema):
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(load(name)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_passes_ray_up_offline_checks(name):
    prepared = prepare_config(copy.deepcopy(load(name)))
    validate_config(prepared)  # schema again after defaults, head type, min/max workers
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_token_auth_on_every_node(name):
    config = load(name)
    for role, commands in start_commands(config).items():
        starts = ray_start(commands)
        assert len(starts) == 1, f"{role}: expected one `ray start`, got {starts}"
        # The mode is exported in the same shell command that runs `ray start` (and `ray stop`).
        for cmd in commands:
            assert re.search(r"\bexport\b[^&;]*\bRAY_AUTH_MODE=token\b", cmd), f"{role}: {cmd!r} lacks RAY_AUTH_MODE=token"
    # The token reaches every node at Ray's default location, from a file outside the repository.
    mounts = config["file_mounts"]
    assert "~/.ray/auth_token" in mounts
    local = mounts["~/.ray/auth_token"]
    assert local.startswith(("~", "/")), f"token source {local!r} must be an absolute or ~ path"
    resolved = Path(os.path.expanduser(local)).resolve()
    assert ROOT not in resolved.parents, "the token file must live outside the repository"
    assert "RAY_AUTH_MODE=disabled" not in CONFIGS[name].read_text()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dashboard_only_on_head_loopback(name):
    config = load(name)
    (head,) = ray_start(config["head_start_ray_commands"])
    assert "--head" in head
    hosts = [w.split("=", 1)[1] for w in head if w.startswith("--dashboard-host=")]
    assert hosts == ["127.0.0.1"], f"dashboard must bind to loopback only, got {hosts}"
    assert ipaddress.ip_address(hosts[0]).is_loopback
    text = CONFIGS[name].read_text()
    assert "0.0.0.0" not in text.replace("0.0.0.0/0", "")  # no wildcard bind anywhere
    assert "--ray-debugger-external" not in head


def test_aws_security_group_opens_no_ray_port():
    provider = load("aws")["provider"]
    assert provider["type"] == "aws"
    group = provider["security_group"]
    assert group.get("GroupName")
    # Ray adds SSH and intra-cluster rules itself; the config may add SSH from a CIDR, nothing else.
    for rule in group.get("IpPermissions", []):
        assert (rule.get("FromPort"), rule.get("ToPort"), rule.get("IpProtocol")) == (22, 22, "tcp"), rule
        for rng in rule.get("IpRanges", []):
            assert rng["CidrIp"] != "0.0.0.0/0", "restrict SSH to your network"


def test_aws_layout_cpu_head_autoscaling_gpu_workers():
    config = load("aws")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))  # a CPU instance
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert workers
    for name, worker in workers.items():
        assert worker["resources"].get("GPU", 0) >= 1, name
        assert worker["min_workers"] == 0, f"{name}: GPU workers scale from zero"
        assert 1 <= worker["max_workers"] <= config["max_workers"]
        assert worker["node_config"]["InstanceType"].startswith(("g", "p")), name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_installs_sertune_with_the_pyproject_pins(name):
    config = prepare_config(copy.deepcopy(load(name)))  # merges setup_commands into head/worker
    expected = pins()
    assert {"torch", "ray"} <= set(expected), expected
    for role in ("head_setup_commands", "worker_setup_commands"):
        commands = " ".join(config[role])
        installs = [c for c in config[role] if "pip install" in c]
        assert installs, f"{role}: no pip install"
        for pin in expected.values():
            assert pin in commands or shlex.quote(pin) in commands, f"{role}: missing {pin}"
        # torch==X.Y.Z never appears with a different version
        for dist, pin in expected.items():
            versions = set(re.findall(rf"\b{re.escape(dist)}(?:\[[^\]]*\])?==([\w.+-]+)", commands))
            assert versions <= {pin.rsplit("==", 1)[1]}, f"{role}: {dist} pinned to {versions}"
        assert "~/sertune-src" in commands or "sertune @ git+" in commands, f"{role}: sertune itself is not installed"
    assert config["file_mounts"].get("~/sertune-src") == "."


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_names_the_shared_locations(name):
    shared = load(name)["metadata"]["sertune"]
    for key in ("store", "experiment_dir", "data"):
        assert shared.get(key), key
    for key in ("store", "experiment_dir"):
        value = shared[key]
        assert "://" in value or value.startswith("/"), f"{key}: {value!r} must be a URI or an absolute shared path"
    if name == "aws":
        assert shared["store"].startswith("s3://")
        # Workers touch S3 with an instance profile, not with keys shipped to the nodes.
        for node_type in load(name)["available_node_types"].values():
            if node_type["resources"].get("GPU"):
                assert node_type["node_config"].get("IamInstanceProfile")
        assert "AWS_SECRET_ACCESS_KEY" not in CONFIGS[name].read_text()


def test_local_provider_lists_head_and_workers():
    provider = load("local")["provider"]
    assert provider["type"] == "local"
    ipaddress.ip_address(provider["head_ip"])
    assert provider["worker_ips"]
    for ip in provider["worker_ips"]:
        ipaddress.ip_address(ip)
    assert provider["head_ip"] not in provider["worker_ips"]
