"""`ddray submit`: a run as a Ray Job on a remote cluster.

Why a stable submission id: submitting the same spec twice (a retried command, a CI re-run)
must not start two drivers writing the same store. The id is derived from what defines the run
(spec text, store, extra arguments) plus an attempt number: a running or finished job with that
id is returned as is; a failed or stopped one is followed by the next attempt, which resumes
from the store (finished trials are never run again).

Why the job carries ddray: its runtime env ships the ddray package that submits it
(`py_modules`), beside the spec (`working_dir`), so a cluster with Ray, torch and ddray's other
dependencies runs the spec without ddray installed, and a cluster with another ddray runs the
submitter's (py_modules come first on the job's PYTHONPATH). There is no `pip` in it: a per-job
virtualenv would install torch on every node for every job; the nodes bring the dependencies
(cluster/README.md says which).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from ddray.errors import InputError
from ddray.yaml_strict import load

# Ray's JobStatus values, as strings (kept free of a Ray import for the pure part).
RESUBMIT = frozenset({"FAILED", "STOPPED"})
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def run_fingerprint(spec_text: str, store: str | None = None, extra_args: Sequence[str] = ()) -> str:
    """First 8 hex digits of a hash over what makes two submissions the same run."""
    payload = json.dumps({"spec": spec_text, "store": store, "args": list(extra_args)},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:8]


def spec_slug(spec_text: str, fallback: str) -> str:
    """The spec's `name` (or the file stem) made safe for a submission id."""
    try:
        data = load(spec_text)
    except yaml.YAMLError:
        data = None
    name = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else fallback
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40] or "run"


def submission_id(slug: str, fingerprint: str, attempt: int) -> str:
    return f"ddray-{slug}-{fingerprint}-{attempt}"


def choose_submission(slug: str, fingerprint: str, existing: Mapping[str, str]) -> tuple[str, bool]:
    """(id, must_submit) given the cluster's jobs (`submission id -> status`).

    The first attempt whose job is absent is submitted; a PENDING/RUNNING/SUCCEEDED job of an
    earlier attempt is returned instead (the run is under way or done); FAILED/STOPPED ones are
    skipped.
    """
    attempt = 1
    while True:
        sid = submission_id(slug, fingerprint, attempt)
        status = existing.get(sid)
        if status is None:
            return sid, True
        if str(status) not in RESUBMIT:
            return sid, False
        attempt += 1


# The driver a job runs (ddray/cluster/job.py): a module, since a cluster that gets ddray only
# through py_modules has no `ddray` script on its PATH.
JOB_DRIVER = ("python", "-m", "ddray.cluster.job")

# Left out of the shipped package: bytecode belongs to the submitter's interpreter.
SHIPPED_EXCLUDES = ("__pycache__/", "*.pyc")


def entrypoint(spec_name: str, store: str | None, extra_args: Sequence[str]) -> str:
    args = [*JOB_DRIVER, "run", spec_name]
    if store:
        args += ["--store", store]
    args += list(extra_args)
    return " ".join(shlex.quote(a) for a in args)


def ddray_package_dir() -> Path:
    """The folder of the ddray package this process runs: what a submitted job carries."""
    import ddray

    return Path(ddray.__file__).resolve().parent


def job_runtime_env(workdir: Path) -> dict[str, object]:
    """The runtime env of a submitted run: the spec folder as `working_dir`, ddray as `py_modules`."""
    return {"working_dir": str(workdir), "py_modules": [str(ddray_package_dir())],
            "excludes": list(SHIPPED_EXCLUDES)}


def submit(spec_path: str | Path, address: str, store: str | None = None,
           extra_args: Sequence[str] = (), wait: bool = False, poll_s: float = 5.0) -> str:
    """Send `ddray run SPEC [--store URI] ...` to the cluster at `address` (its dashboard URL).

    The spec travels in the job's working directory and ddray in its py_modules, so the cluster
    needs neither. Returns the submission id; with `wait`, returns once the job has ended.
    """
    path = Path(spec_path)
    if not path.is_file():
        raise InputError(f"no such spec file: {path}", path="spec")
    text = path.read_text()
    slug = spec_slug(text, path.stem)
    fingerprint = run_fingerprint(text, store, extra_args)
    client = connect(address)
    existing = {j.submission_id: str(getattr(j.status, "value", j.status))
                for j in client.list_jobs() if j.submission_id}
    sid, must_submit = choose_submission(slug, fingerprint, existing)
    if must_submit:
        workdir = Path(tempfile.mkdtemp(prefix="ddray-submit-"))
        try:
            shutil.copyfile(path, workdir / path.name)
            client.submit_job(
                entrypoint=entrypoint(path.name, store, extra_args),
                submission_id=sid,
                runtime_env=job_runtime_env(workdir),
                metadata={"ddray_spec": path.name, "ddray_run": fingerprint},
            )
        finally:  # submit_job uploads both folders; the local copy of the spec is no longer needed
            shutil.rmtree(workdir, ignore_errors=True)
    if wait:
        wait_for_job(client, sid, poll_s)
    return sid


def connect(address: str):
    """A JobSubmissionClient, or InputError naming the address when nothing answers there."""
    try:  # the Jobs SDK needs ray[default]'s HTTP stack, which ray[tune] does not bring
        import aiohttp  # noqa: F401
        import requests  # noqa: F401
    except ImportError as e:
        raise InputError(f"`ddray submit` needs Ray's Jobs SDK: pip install 'ray[default]==2.60.*' ({e})",
                         path="address") from None
    from ray.job_submission import JobSubmissionClient

    url = address if "://" in address else f"http://{address}"
    try:
        return JobSubmissionClient(url)
    except Exception as e:  # noqa: BLE001 - connection refused, DNS, HTTP errors, old Ray
        hint = ""
        if re.search(r":(6379|10001)\b", url):
            hint = " (that is a GCS/client port; `ddray submit` needs the dashboard, e.g. http://HEAD:8265)"
        raise InputError(f"cannot reach a Ray Jobs API at {url}{hint}: {e}", path="address") from None


def job_status(address: str, sid: str) -> str:
    status = connect(address).get_job_status(sid)
    return str(getattr(status, "value", status))


def wait_for_job(client, sid: str, poll_s: float = 5.0) -> str:
    """Poll until the job ends; its final status (SUCCEEDED, FAILED or STOPPED)."""
    while True:
        status = client.get_job_status(sid)
        value = str(getattr(status, "value", status))
        if value in TERMINAL:
            return value
        time.sleep(poll_s)
