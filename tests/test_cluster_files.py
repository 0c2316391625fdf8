"""Cluster files validate offline; broken copies fail naming the path of the error; the pins
match pyproject.toml; every node installs ddray from the wheel built from this checkout, never
from a package index; a submitted job carries ddray; submission ids are stable."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ddray.cluster.cli import cluster_app, default_cluster_files
from ddray.cluster.local import local_config
from ddray.cluster.submit import (
    choose_submission, connect, ddray_package_dir, entrypoint, job_runtime_env, run_fingerprint,
    spec_slug, submission_id,
)
from ddray.cluster.validate import check_cluster_file, find_crd, validate_cluster_file
from ddray.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
FILES = default_cluster_files(CLUSTER)
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
WHEEL = f"ddray-{PROJECT['version']}-py3-none-any.whl"  # what `make wheel` builds into dist/
KUBERAY = ("kuberay/raycluster.yaml", "kuberay/rayjob.yaml")
HAVE_CRDS = find_crd("RayCluster") is not None and find_crd("RayJob") is not None
needs_crds = pytest.mark.skipif(not HAVE_CRDS, reason="KubeRay CRDs not found (../shared/kuberay-crd/)")


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _broken(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> Path:
    text = (CLUSTER / name).read_text()
    assert old in text, old
    out = tmp_path / Path(name).name
    out.write_text(text.replace(old, new, count))
    return out


def test_cluster_folder_has_the_expected_files():
    names = {p.relative_to(CLUSTER).as_posix() for p in FILES}
    assert {"aws.yaml", "gcp.yaml", "local-autoscale.yaml",
            "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(CLUSTER).as_posix())
def test_every_cluster_file_validates_offline(path: Path):
    check = check_cluster_file(path)
    assert check.problems == []
    if HAVE_CRDS:
        assert check.notes == []  # nothing skipped when the CRDs are there


# ---- launcher YAMLs ----------------------------------------------------------------------------
def test_duplicate_keys_in_a_cluster_file_are_reported(tmp_path: Path):
    """Read strictly like specs: a second `max_workers:` would otherwise silently win."""
    bad = _broken(tmp_path, "aws.yaml", "    max_workers: 8", "    max_workers: 8\n    max_workers: 2")
    problems = validate_cluster_file(bad)
    assert len(problems) == 1 and "duplicate key 'max_workers'" in problems[0] and problems[0].startswith(f"{bad}: ")


def test_launcher_typo_names_the_field_and_suggests(tmp_path: Path):
    bad = _broken(tmp_path, "aws.yaml", "    min_workers: 0\n    max_workers: 8", "    min_wokers: 0\n    max_workers: 8")
    problems = validate_cluster_file(bad)
    assert f"{bad}: available_node_types.gpu_1x.min_wokers: unknown field (did you mean 'min_workers'?)" in problems


def test_launcher_wrong_type_names_the_field(tmp_path: Path):
    bad = _broken(tmp_path, "aws.yaml", "resources: {CPU: 4, GPU: 1}", "resources: {CPU: 4, GPU: 0.5}")
    problems = validate_cluster_file(bad)
    assert any(p.startswith(f"{bad}: available_node_types.gpu_1x.resources.GPU: expected integer") for p in problems)
    bad = _broken(tmp_path, "gcp.yaml", "idle_timeout_minutes: 10", "idle_timeout_minutes: soon")
    assert any(p.startswith(f"{bad}: idle_timeout_minutes: expected number") for p in validate_cluster_file(bad))


def test_launcher_aws_node_config_checked_against_ec2(tmp_path: Path):
    pytest.importorskip("botocore")
    bad = _broken(tmp_path, "aws.yaml", "MarketType: spot", "MarketType: spto")
    problems = validate_cluster_file(bad)
    assert any(p.startswith(f"{bad}: available_node_types.gpu_1x.node_config.InstanceMarketOptions.MarketType:")
               and "did you mean 'spot'" in p for p in problems)
    bad = _broken(tmp_path, "aws.yaml", "InstanceType: g5.xlarge", "InstanceTyp: g5.xlarge")
    assert (f"{bad}: available_node_types.gpu_1x.node_config.InstanceTyp: unknown field "
            "(did you mean 'InstanceType'?)") in validate_cluster_file(bad)


def test_launcher_gcp_scheduling_must_be_a_mapping(tmp_path: Path):
    bad = _broken(tmp_path, "gcp.yaml", "      scheduling:\n        preemptible: true\n",
                  "      scheduling:\n        - preemptible: true\n      foo:\n        x: 1\n")
    problems = validate_cluster_file(bad)
    assert any(p.startswith(f"{bad}: available_node_types.gpu_1x.node_config.scheduling: expected a mapping")
               for p in problems)


def test_launcher_ray_semantics_head_type_must_exist(tmp_path: Path):
    bad = _broken(tmp_path, "aws.yaml", "head_node_type: head", "head_node_type: hed")
    problems = validate_cluster_file(bad)
    assert any(p.startswith(f"{bad}: head_node_type:") for p in problems), problems


def test_launcher_shape_head_cpu0_gpu_workers_from_zero_spot():
    for name in ("aws.yaml", "gcp.yaml"):
        cfg = _load(name)
        types = cfg["available_node_types"]
        assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}
        workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
        assert sorted(v["resources"]["GPU"] for v in workers.values()) == [1, 4, 8]
        for w in workers.values():
            assert w["min_workers"] == 0 and w["max_workers"] >= 1
            nc = w["node_config"]
            spot = (nc.get("InstanceMarketOptions", {}).get("MarketType") == "spot"
                    or nc.get("scheduling", {}).get("preemptible") is True)
            assert spot, name
        assert cfg["idle_timeout_minutes"] > 0 and "~/specs" in cfg["file_mounts"]


def _cluster_spec(name: str) -> dict:
    spec = _load(name)["spec"]
    return spec.get("rayClusterSpec", spec)


def _pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]


def test_pins_match_pyproject():
    ray_pin = next(d for d in PROJECT["dependencies"] if d.startswith("ray["))
    ray_version = re.search(r"==\s*([\d.]+)", ray_pin).group(1).rstrip(".")  # "2.60"
    assert ray_pin.endswith(f"=={ray_version}.*")
    for name in ("aws.yaml", "gcp.yaml"):
        images = re.findall(r"rayproject/ray:([\w.\-]+)", (CLUSTER / name).read_text())
        assert images and all(tag.startswith(f"{ray_version}.") for tag in images), (name, images)
    for name in KUBERAY:
        spec = _cluster_spec(name)
        assert spec["rayVersion"].startswith(f"{ray_version}.")
        images = [c["image"] for t in _pod_templates(spec) for c in t["spec"]["containers"]]
        assert all(i.startswith(f"rayproject/ray:{spec['rayVersion']}-") for i in images), (name, images)


# ---- ddray on the nodes: the wheel of this checkout, never a package index ----------------------
PIP_INSTALL = re.compile(r"\bpip3?\s+install\b(?P<args>[^\n;&|]*)")


def _pip_install_args(text: str) -> list[str]:
    """Every argument of every `pip install` in a file: commands, comments and all."""
    return [arg.strip("\"'") for m in PIP_INSTALL.finditer(text)
            for arg in re.findall(r'"[^"]*"|\'[^\']*\'|\S+', m.group("args"))]


@pytest.mark.parametrize("path", sorted(p for p in CLUSTER.rglob("*") if p.is_file()),
                         ids=lambda p: p.relative_to(CLUSTER).as_posix())
def test_no_cluster_file_installs_a_ddray_not_built_from_the_checkout(path: Path):
    """`pip install ddray==0.1.0` (not on any index), `ddray @ git+URL` and the like fail on a
    fresh account; the only ddray a cluster file may install is the wheel `make wheel` built."""
    for arg in _pip_install_args(path.read_text()):
        if "ddray" in arg.lower() and not arg.startswith("-"):
            assert arg.endswith(f"/ddray-dist/{WHEEL}"), f"{path.name}: pip install {arg}"


def test_pip_install_args_are_found_in_commands_and_comments():
    text = ('setup_commands:\n  - pip install --quiet "ddray==0.1.0" "ray[tune]==2.60.*"\n'
            '#   RUN python -m pip install "ddray @ git+https://x/ddray@v1" && ray start\n'
            'args: ["pip install /d/ddray-dist/x.whl || exit 1; ray start"]\n')
    assert _pip_install_args(text) == ["--quiet", "ddray==0.1.0", "ray[tune]==2.60.*",
                                       "ddray @ git+https://x/ddray@v1", "/d/ddray-dist/x.whl"]


def test_every_launcher_node_installs_the_wheel_it_mounts():
    for name in ("aws.yaml", "gcp.yaml"):
        cfg = _load(name)
        assert cfg["file_mounts"]["~/ddray-dist"] == "./dist", name  # where `make wheel` writes
        # setup_commands run on every node (head_/worker_setup_commands on some only)
        assert f"~/ddray-dist/{WHEEL}" in _pip_install_args("\n".join(cfg["setup_commands"])), name


def test_every_kuberay_pod_installs_the_wheel_before_ray_starts():
    for name in KUBERAY:
        # KubeRay runs the container command below only with this annotation (a RayJob copies
        # its annotations onto the RayCluster it creates)
        assert _load(name)["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true", name
        for template in _pod_templates(_cluster_spec(name)):
            pod = template["spec"]
            ray_container = pod["containers"][0]
            script = " ".join([*ray_container["command"], *ray_container["args"]])
            assert f"/home/ray/ddray-dist/{WHEEL}" in _pip_install_args(script), (name, script)
            assert script.index("pip install") < script.index("$KUBERAY_GEN_RAY_START_CMD"), script
            assert {"name": "ddray-dist", "mountPath": "/home/ray/ddray-dist"} in ray_container["volumeMounts"]
            assert {"name": "ddray-dist", "configMap": {"name": "ddray-dist"}} in pod["volumes"]


@pytest.mark.slow
def test_make_wheel_builds_the_file_the_cluster_files_install(tmp_path: Path):
    """`make wheel`'s build of this checkout is named WHEEL, holds every module of the package,
    and fits a Kubernetes ConfigMap (1 MiB, base64-encoded), which carries it to KubeRay pods."""
    pytest.importorskip("setuptools")
    recipe = re.search(r"^wheel:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe and "pip wheel --quiet --no-deps --wheel-dir dist ." in recipe.group(1)
    src = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ddray", src / "ddray", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").iterdir()
    assert wheel.name == WHEEL
    modules = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    assert modules == {p.relative_to(REPO).as_posix() for p in (REPO / "ddray").rglob("*.py")}
    assert wheel.stat().st_size * 4 / 3 < 1_000_000


def test_local_autoscale_yaml_is_the_builtin_config():
    assert _load("local-autoscale.yaml") == local_config()


# ---- KubeRay -----------------------------------------------------------------------------------
def test_rayjob_runs_ddray_on_the_raycluster_spec():
    cluster, job = _load("kuberay/raycluster.yaml"), _load("kuberay/rayjob.yaml")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]
    assert job["spec"]["entrypoint"].startswith("ddray run ") and "--store s3://" in job["spec"]["entrypoint"]
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["shutdownAfterJobFinishes"] is True
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] == 0 and group["maxReplicas"] >= 1
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] in (1, 4, 8)


@needs_crds
def test_kuberay_typo_and_wrong_type_name_the_path(tmp_path: Path):
    bad = _broken(tmp_path, "kuberay/raycluster.yaml", "minReplicas: 0", "minReplica: 0")
    bad_text = bad.read_text().replace("maxReplicas: 2", "maxReplicas: two").replace('num-cpus: "0"', "num-cpus: 0")
    bad.write_text(bad_text)
    problems = validate_cluster_file(bad)
    assert f"{bad}: spec.workerGroupSpecs[0].minReplica: unknown field (did you mean 'minReplicas'?)" in problems
    assert f"{bad}: spec.workerGroupSpecs[0].minReplicas: required field missing" in problems
    assert any(p.startswith(f"{bad}: spec.workerGroupSpecs[1].maxReplicas: expected integer") for p in problems)
    assert any(p.startswith(f"{bad}: spec.headGroupSpec.rayStartParams.num-cpus: expected string") for p in problems)


@needs_crds
def test_kuberay_rayjob_nested_errors(tmp_path: Path):
    bad = _broken(tmp_path, "kuberay/rayjob.yaml", "backoffLimit: 3", "backofLimit: 3")
    bad.write_text(bad.read_text().replace("nvidia.com/gpu: 1}", "nvidia.com/gpu: [1]}", 1))
    problems = validate_cluster_file(bad)
    assert f"{bad}: spec.backofLimit: unknown field (did you mean 'backoffLimit'?)" in problems
    assert any(p.startswith(f'{bad}: spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0]'
                            f'.resources.limits["nvidia.com/gpu"]: expected an integer or a string')
               for p in problems), problems


def test_crd_check_skipped_only_when_crds_absent(tmp_path: Path):
    bad = _broken(tmp_path, "kuberay/rayjob.yaml", "backoffLimit: 3", "backofLimit: 3")
    check = check_cluster_file(bad, crd_dir=tmp_path / "no-crds-here")
    assert check.problems == [] and len(check.notes) == 1 and "not checked against its CRD" in check.notes[0]
    # checks that need no CRD still run
    bad.write_text(bad.read_text().replace("apiVersion: ray.io/v1", "apiVersion: v1"))
    assert any("apiVersion" in p for p in check_cluster_file(bad, crd_dir=tmp_path).problems)


@needs_crds
def test_crd_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    crd = find_crd("RayJob")
    monkeypatch.setenv("DDRAY_KUBERAY_CRDS", str(crd.parent))
    assert find_crd("RayJob") == crd
    monkeypatch.setenv("DDRAY_KUBERAY_CRDS", str(tmp_path))
    assert find_crd("RayJob") is None


def test_unknown_file_kind_and_bad_yaml(tmp_path: Path):
    (tmp_path / "x.yaml").write_text("hello: world\n")
    assert "not a cluster file" in validate_cluster_file(tmp_path / "x.yaml")[0]
    (tmp_path / "z.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
                                     + (CLUSTER / "kuberay/raycluster.yaml").read_text())
    check = check_cluster_file(tmp_path / "z.yaml")
    assert check.problems == [] and any("kind ConfigMap" in n for n in check.notes)
    (tmp_path / "y.yaml").write_text("a: [\n")
    assert "not valid YAML" in validate_cluster_file(tmp_path / "y.yaml")[0]


# ---- CLI -----------------------------------------------------------------------------------------
def test_cli_validate_exit_codes(tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(cluster_app, ["validate", *map(str, FILES)])
    assert ok.exit_code == 0, ok.output
    bad = _broken(tmp_path, "aws.yaml", "    min_workers: 0\n    max_workers: 8", "    min_wokers: 0\n    max_workers: 8")
    res = runner.invoke(cluster_app, ["validate", str(bad), str(CLUSTER / "gcp.yaml")])
    assert res.exit_code == 2
    assert "available_node_types.gpu_1x.min_wokers: unknown field" in res.output


# ---- submission ids ------------------------------------------------------------------------------
def test_submission_id_is_stable_and_sensitive():
    spec = "name: CIFAR10 rd3\nipc: [1, 10]\n"
    fp = run_fingerprint(spec, "s3://b/x")
    assert fp == run_fingerprint(spec, "s3://b/x") and re.fullmatch(r"[0-9a-f]{8}", fp)
    assert fp != run_fingerprint(spec + "seeds: [0]\n", "s3://b/x")
    assert fp != run_fingerprint(spec, "s3://b/y")
    assert fp != run_fingerprint(spec, "s3://b/x", ["--max-failures", "3"])
    slug = spec_slug(spec, "fallback")
    assert slug == "cifar10-rd3"
    assert spec_slug("- not a mapping", "my_spec") == "my-spec"
    assert submission_id(slug, fp, 1) == f"ddray-cifar10-rd3-{fp}-1"


def test_choose_submission_attempts():
    sid = lambda a: submission_id("s", "abcd1234", a)  # noqa: E731
    assert choose_submission("s", "abcd1234", {}) == (sid(1), True)
    assert choose_submission("s", "abcd1234", {"other": "RUNNING"}) == (sid(1), True)
    for live in ("PENDING", "RUNNING", "SUCCEEDED"):
        assert choose_submission("s", "abcd1234", {sid(1): live}) == (sid(1), False)
    assert choose_submission("s", "abcd1234", {sid(1): "FAILED"}) == (sid(2), True)
    assert choose_submission("s", "abcd1234", {sid(1): "FAILED", sid(2): "STOPPED"}) == (sid(3), True)
    assert choose_submission("s", "abcd1234", {sid(1): "FAILED", sid(2): "RUNNING"}) == (sid(2), False)


def test_entrypoint_quotes_arguments():
    assert entrypoint("cifar10-rd3.yaml", "s3://b/x", ["--only", "ipc=1,10"]) == \
        "python -m ddray.cluster.job run cifar10-rd3.yaml --store s3://b/x --only ipc=1,10"
    assert entrypoint("my spec.yaml", None, []) == "python -m ddray.cluster.job run 'my spec.yaml'"


def test_a_job_carries_ddray_and_the_spec_without_pip(tmp_path: Path):
    from ray.runtime_env import RuntimeEnv

    import ddray

    env = job_runtime_env(tmp_path)
    assert env["working_dir"] == str(tmp_path)
    assert env["py_modules"] == [str(ddray_package_dir())]
    assert ddray_package_dir() == Path(ddray.__file__).resolve().parent
    assert (ddray_package_dir() / "cluster" / "job.py").is_file()  # the entrypoint's module travels too
    assert not {"pip", "uv", "conda", "container", "image_uri"} & set(env)
    assert "__pycache__/" in env["excludes"]
    RuntimeEnv(**env)  # Ray accepts it as a runtime env


def test_unreachable_address_is_an_input_error():
    with pytest.raises(InputError) as err:
        connect("127.0.0.1:9")
    assert "address" in str(err.value)
