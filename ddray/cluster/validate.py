"""Offline checks of cluster files: Ray cluster-launcher YAMLs and KubeRay manifests.

Why: a typo in a cluster file costs a cloud round-trip (`ray up` provisions a head before it
fails, KubeRay's webhook answers only once you can reach a cluster). Every check here runs
without credentials or network:

- launcher YAMLs: the `ray-schema.json` inside the installed Ray wheel (the schema `ray up`
  applies), then Ray's own offline preparation (`prepare_config` merges the provider's
  defaults, `validate_config` checks head type and worker counts), then the provider's node
  API where a model of it is available offline (AWS: botocore's EC2 `RunInstances` input shape).
- KubeRay manifests: the CRDs' `openAPIV3Schema`. OpenAPI objects accept unknown keys unless
  told otherwise, while the API server prunes them silently, so unknown keys are reported here
  (a typo such as `minReplica` would otherwise vanish without a word).

Every problem reads `file: path.to.field: message`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ddray.errors import did_you_mean
from ddray.yaml_strict import load_all

KUBERAY_KINDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
CRD_ENV = "DDRAY_KUBERAY_CRDS"
_Path = tuple[Any, ...]


@dataclass
class ClusterCheck:
    """Problems (the file is wrong) and notes (a check that could not run, and why)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validate_cluster_file(path: str | os.PathLike[str],
                          crd_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                          ) -> list[str]:
    """Problems of one cluster file as `file: path.to.field: message` (empty when valid)."""
    return check_cluster_file(path, crd_dir).problems


def check_cluster_file(path: str | os.PathLike[str],
                       crd_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                       ) -> ClusterCheck:
    """Like `validate_cluster_file`, and say which checks were skipped (missing CRDs)."""
    name = str(path)
    out = ClusterCheck()
    try:
        docs = [d for d in load_all(Path(path).read_text()) if d is not None]
    except FileNotFoundError:
        out.problems.append(f"{name}: no such file")
        return out
    except yaml.YAMLError as e:
        out.problems.append(f"{name}: not valid YAML: {e}")
        return out
    if not docs:
        out.problems.append(f"{name}: empty file")
        return out
    for i, doc in enumerate(docs):
        where = name if len(docs) == 1 else f"{name}[document {i}]"
        if not isinstance(doc, dict):
            out.problems.append(f"{where}: expected a mapping, got {type(doc).__name__}")
        elif doc.get("kind") in KUBERAY_KINDS:
            _check_kuberay(doc, where, crd_dir, out)
        elif isinstance(doc.get("kind"), str) and "apiVersion" in doc:
            # Other Kubernetes objects beside the Ray ones (ConfigMap, ServiceAccount, ...).
            out.notes.append(f"{where}: kind {doc['kind']} is not a Ray resource: not checked")
        elif "provider" in doc or "cluster_name" in doc:
            out.problems += [f"{where}: {p}" for p in launcher_problems(doc)]
        else:
            out.problems.append(
                f"{where}: not a cluster file: expected `kind: RayCluster|RayJob` (KubeRay) "
                "or a `provider:` section (Ray cluster launcher)")
    return out


# ---- Ray cluster launcher ----------------------------------------------------------------------
def launcher_problems(config: dict[str, Any]) -> list[str]:
    """`path: message` problems of a cluster-launcher config, checked as `ray up` would."""
    schema = ray_launcher_schema()
    problems = schema_problems(config, schema)
    if not problems:  # Ray's preparation assumes a schema-valid config
        problems += _ray_semantic_problems(config)
        problems += _node_type_problems(config)
    provider = config.get("provider")
    ptype = provider.get("type") if isinstance(provider, dict) else None
    node_types = config.get("available_node_types")
    for tname, ntype in (node_types.items() if isinstance(node_types, dict) else ()):
        node_config = ntype.get("node_config") if isinstance(ntype, dict) else None
        if not isinstance(node_config, dict):
            continue
        base: _Path = ("available_node_types", tname, "node_config")
        if ptype == "aws":
            problems += _aws_node_config_problems(node_config, base)
        elif ptype == "gcp":
            problems += _gcp_node_config_problems(node_config, base)
    return problems


@lru_cache(maxsize=1)
def ray_launcher_schema() -> dict[str, Any]:
    """The schema `ray up` validates against, from the installed Ray wheel."""
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def _ray_semantic_problems(config: dict[str, Any]) -> list[str]:
    """Ray's own offline preparation and validation (no provider bootstrap: that calls the cloud)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = copy.deepcopy(config)
    quiet = logging.getLogger("ray.autoscaler._private.util")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "setting max workers for head node type to 0" is noise here
    try:
        if cfg["provider"].get("type") != "fake_multinode":
            # fake_multinode's defaults file is not in the wheel; its monitor reads configs raw.
            cfg = prepare_config(cfg)
        validate_config(cfg)
    except jsonschema.ValidationError:  # already reported by schema_problems
        return []
    except Exception as e:  # noqa: BLE001 - any Ray failure on a config is a config problem
        msg = str(e).strip("'\"") or type(e).__name__
        # Ray's messages name no path; attach the field they are about.
        field_ = "provider.type" if "node provider" in msg else next(
            (f for f in ("head_node_type", "max_workers", "docker") if f in msg), None)
        return [f"{field_ or '(top level)'}: {msg}"]
    finally:
        quiet.setLevel(level)
    return []


def _node_type_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    for tname, ntype in (config.get("available_node_types") or {}).items():
        lo, hi = ntype.get("min_workers"), ntype.get("max_workers")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(f"{_render(('available_node_types', tname, 'min_workers'))}: "
                            f"{lo} is more than max_workers ({hi})")
    return problems


def _aws_node_config_problems(node_config: dict[str, Any], base: _Path) -> list[str]:
    """Check an AWS node_config against EC2 RunInstances (Ray passes it to `create_instances`)."""
    shape = _run_instances_shape()
    if shape is None:
        return []
    return [f"{_render(p)}: {m}" for p, m in _botocore_problems(node_config, shape, base)]


@lru_cache(maxsize=1)
def _run_instances_shape() -> Any:
    try:
        import botocore.session
    except ImportError:  # botocore ships with boto3, which `ray up` on AWS needs anyway
        return None
    model = botocore.session.get_session().get_service_model("ec2")
    return model.operation_model("RunInstances").input_shape


# Long enums (instance types) grow faster than an installed botocore; only short ones are strict.
_MAX_STRICT_ENUM = 50


def _botocore_problems(value: Any, shape: Any, path: _Path) -> Iterator[tuple[_Path, str]]:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            yield path, f"expected a mapping ({shape.name}), got {_type(value)}"
            return
        members = shape.members
        for key, sub in value.items():
            if key not in members:
                yield path + (key,), f"unknown field{did_you_mean(key, members)}"
            else:
                yield from _botocore_problems(sub, members[key], path + (key,))
    elif kind == "list":
        if not isinstance(value, list):
            yield path, f"expected a list, got {_type(value)}"
            return
        for i, item in enumerate(value):
            yield from _botocore_problems(item, shape.member, path + (i,))
    elif kind == "map":
        if not isinstance(value, dict):
            yield path, f"expected a mapping, got {_type(value)}"
    elif kind == "string":
        if not isinstance(value, str):
            yield path, f"expected a string, got {_type(value)}"
        elif shape.enum and len(shape.enum) <= _MAX_STRICT_ENUM and value not in shape.enum:
            yield path, f"'{value}' is not one of {', '.join(shape.enum)}{did_you_mean(value, shape.enum)}"
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            yield path, f"expected an integer, got {_type(value)}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield path, f"expected true or false, got {_type(value)}"


# Fields of a Compute Engine instance (compute v1 `instances.insert`) and Ray's extra key. Only
# near-misses of these are reported: the API grows, and an unlisted real field must not fail.
_GCP_INSTANCE_FIELDS = (
    "advancedMachineFeatures", "canIpForward", "confidentialInstanceConfig", "deletionProtection",
    "description", "disks", "displayDevice", "guestAccelerators", "hostname", "labels",
    "machineType", "metadata", "minCpuPlatform", "name", "networkInterfaces",
    "networkPerformanceConfig", "params", "reservationAffinity", "resourcePolicies", "scheduling",
    "serviceAccounts", "shieldedInstanceConfig", "sourceMachineImage", "tags", "zone",
    "sourceInstanceTemplate",
)
_GCP_SCHEDULING_FIELDS = (
    "automaticRestart", "instanceTerminationAction", "locationHint", "maxRunDuration",
    "minNodeCpus", "nodeAffinities", "onHostMaintenance", "preemptible", "provisioningModel",
    "terminationTime", "localSsdRecoveryTimeout", "onInstanceStopAction",
)


def _gcp_node_config_problems(node_config: dict[str, Any], base: _Path) -> list[str]:
    problems = []
    is_tpu = "acceleratorType" in node_config or "runtimeVersion" in node_config
    if not is_tpu and "machineType" not in node_config and "sourceInstanceTemplate" not in node_config:
        problems.append(f"{_render(base)}: 'machineType' is required (Ray reads it for every node)")
    for key in node_config:
        if not is_tpu and key not in _GCP_INSTANCE_FIELDS and did_you_mean(key, _GCP_INSTANCE_FIELDS):
            problems.append(f"{_render(base + (key,))}: unknown field{did_you_mean(key, _GCP_INSTANCE_FIELDS)}")
    sched = node_config.get("scheduling")
    if sched is not None:
        if not isinstance(sched, dict):
            # Ray's own GCP examples long wrote a list here (ray-project/ray#46248).
            problems.append(f"{_render(base + ('scheduling',))}: expected a mapping "
                            "(e.g. {preemptible: true, onHostMaintenance: TERMINATE}), "
                            f"got {_type(sched)}")
        else:
            for key in sched:
                if key not in _GCP_SCHEDULING_FIELDS:
                    problems.append(f"{_render(base + ('scheduling', key))}: unknown field"
                                    f"{did_you_mean(key, _GCP_SCHEDULING_FIELDS)}")
            if sched.get("preemptible") and sched.get("onHostMaintenance", "TERMINATE") != "TERMINATE":
                problems.append(f"{_render(base + ('scheduling', 'onHostMaintenance'))}: "
                                "preemptible VMs need TERMINATE")
    for i, acc in enumerate(node_config.get("guestAccelerators") or []):
        if not isinstance(acc, dict) or "acceleratorType" not in acc:
            problems.append(f"{_render(base + ('guestAccelerators', i))}: "
                            "needs acceleratorType and acceleratorCount")
    return problems


# ---- KubeRay -----------------------------------------------------------------------------------
def _check_kuberay(doc: dict[str, Any], where: str, crd_dir: Any, out: ClusterCheck) -> None:
    kind = doc["kind"]
    api = doc.get("apiVersion")
    if not isinstance(api, str) or not api.startswith("ray.io/"):
        out.problems.append(f"{where}: apiVersion: expected 'ray.io/v1' for {kind}, got {api!r}")
        return
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        out.problems.append(f"{where}: metadata.name: required")
    crd = find_crd(kind, crd_dir)
    if crd is None:
        out.notes.append(f"{where}: {kind} not checked against its CRD: no {KUBERAY_KINDS[kind]} "
                         f"found (pass --crd FILE or set {CRD_ENV})")
        return
    version = api.split("/", 1)[1]
    schema = crd_schema(str(crd), version)
    if schema is None:
        out.problems.append(f"{where}: apiVersion: {crd.name} has no version '{version}'")
        return
    out.problems += [f"{where}: {p}" for p in schema_problems(doc, schema)]


def find_crd(kind: str, crd_dir: Any = None) -> Path | None:
    """The CRD file of `kind`: from the argument (a folder or files), $DDRAY_KUBERAY_CRDS, or
    `../shared/kuberay-crd/` beside the repository or the working directory."""
    candidates: list[Path] = []
    if crd_dir is not None:
        items = [crd_dir] if isinstance(crd_dir, (str, os.PathLike)) else list(crd_dir)
        candidates += [Path(p) for p in items]
    elif os.environ.get(CRD_ENV):  # set: it alone decides (a user pinning their KubeRay version)
        candidates += [Path(p) for p in os.environ[CRD_ENV].split(os.pathsep) if p]
    else:
        repo = Path(__file__).resolve().parents[2]
        candidates += [repo.parent / "shared" / "kuberay-crd", Path.cwd().parent / "shared" / "kuberay-crd"]
    for cand in candidates:
        if cand.is_dir():
            f = cand / KUBERAY_KINDS[kind]
            if f.is_file():
                return f
        elif cand.is_file() and _crd_kind(str(cand)) == kind:
            return cand
    return None


@lru_cache(maxsize=8)
def _load_crd(path: str) -> dict[str, Any]:
    return yaml.load(Path(path).read_text(), Loader=_safe_loader)


def _crd_kind(path: str) -> str | None:
    try:
        return _load_crd(path)["spec"]["names"]["kind"]
    except (KeyError, TypeError, yaml.YAMLError, OSError):
        return None


@lru_cache(maxsize=8)
def crd_schema(path: str, version: str) -> dict[str, Any] | None:
    """A CRD version's openAPIV3Schema as a JSON Schema (OpenAPI `nullable` made explicit)."""
    for v in _load_crd(path)["spec"]["versions"]:
        if v.get("name") == version:
            return _openapi_to_jsonschema(v["schema"]["openAPIV3Schema"])
    return None


def _openapi_to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False) and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


# ---- shared: JSON Schema errors as `path: message` ---------------------------------------------
def schema_problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Schema violations plus unknown keys (where the schema lists `properties` and does not
    allow others), each as `path.to.field: message`, sorted by path."""
    found: list[tuple[_Path, str]] = []
    validator = jsonschema.validators.validator_for(schema)(schema)
    for err in validator.iter_errors(instance):
        found += _describe(err)
    found += list(_unknown_fields(instance, schema, (), schema))
    seen, problems = set(), []
    for path, msg in sorted(found, key=lambda pm: ([str(p) for p in pm[0]], pm[1])):
        line = f"{_render(path)}: {msg}"
        if line not in seen:
            seen.add(line)
            problems.append(line)
    return problems


def _describe(err: jsonschema.ValidationError) -> list[tuple[_Path, str]]:
    path = tuple(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":  # reported key by key by _unknown_fields
        return []
    if v == "required":
        missing = re.match(r"'([^']+)' is a required property", err.message)
        key = missing.group(1) if missing else str(err.message)
        return [(path + (key,), "required field missing")]
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return [(path, f"expected {want}, got {_type(err.instance)} {_short(err.instance)}")]
    if v == "enum":
        choices = [str(c) for c in err.validator_value]
        return [(path, f"{_short(err.instance)} is not one of {', '.join(choices)}"
                 f"{did_you_mean(str(err.instance), choices)}")]
    if v in ("anyOf", "oneOf"):
        if err.schema.get("x-kubernetes-int-or-string"):
            return [(path, f"expected an integer or a string, got {_type(err.instance)}")]
        return [(path, f"{_short(err.instance)} matches none of the allowed forms")]
    return [(path, err.message)]


def _unknown_fields(instance: Any, schema: Any, path: _Path, root: dict[str, Any]
                    ) -> Iterator[tuple[_Path, str]]:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        schema = _resolve(root, schema["$ref"])
    for sub in schema.get("allOf", []):
        yield from _unknown_fields(instance, sub, path, root)
    if isinstance(instance, dict):
        props = schema.get("properties") or {}
        patterns = schema.get("patternProperties") or {}
        addl = schema.get("additionalProperties")
        open_ended = (isinstance(addl, dict) or addl is True
                      or schema.get("x-kubernetes-preserve-unknown-fields"))
        for key, value in instance.items():
            if key in props:
                yield from _unknown_fields(value, props[key], path + (key,), root)
                continue
            matched = [s for pat, s in patterns.items() if re.search(pat, str(key))]
            for s in matched:
                yield from _unknown_fields(value, s, path + (key,), root)
            if matched:
                continue
            if isinstance(addl, dict):
                yield from _unknown_fields(value, addl, path + (key,), root)
            elif (props or addl is False) and not open_ended:
                yield path + (key,), f"unknown field{did_you_mean(str(key), props)}"
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            yield from _unknown_fields(item, schema["items"], path + (i,), root)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _render(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", str(p)):
            out += f".{p}" if out else str(p)
        else:
            out += f"[{json.dumps(str(p))}]"
    return out or "(top level)"


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML, C-accelerated when available (the CRDs are megabytes)."""


_safe_loader = _Loader  # every YAML file here is read with this safe loader
