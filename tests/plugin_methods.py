"""Test-only plugin methods (`kind: tests.plugin_methods:NAME`): failures and timing probes."""

from __future__ import annotations

import json
import os
import time

from ddray.engine import random_subset


def _subset(ctx):
    idx = random_subset(ctx.data.train.labels, ctx.data.num_classes, ctx.ipc, ctx.seed)
    return ctx.data.train_images(idx), ctx.data.train.labels[idx]


def bad_input(ctx):
    """Always fails the way a bad input file does: the same input fails the same way every time."""
    from ddray.errors import InputError

    raise InputError("the input is wrong", path="methods.bad")


def boom(ctx):
    """Fails until the file named by params.unless exists (then behaves like random)."""
    marker = (ctx.params.model_extra or {}).get("unless", "")
    if not marker or not os.path.exists(marker):
        raise RuntimeError("injected failure for the test")
    return _subset(ctx)


def sleepy(ctx):
    """Sleeps `seconds`, recording when it ran and which (fake) GPU Ray gave it. With `until` (a
    glob) it wakes as soon as a file matches, so a test can hold a slot until something else is
    done, however slow the machine, instead of guessing a long enough sleep."""
    import glob

    extra = ctx.params.model_extra or {}
    t0 = time.time()
    deadline = t0 + float(extra.get("seconds", 1.0))
    until = extra.get("until")
    while time.time() < deadline and not (until and glob.glob(until)):
        time.sleep(min(0.1, max(0.0, deadline - time.time())))
    with open(os.path.join(extra["log"], f"{ctx.seed}-{ctx.ipc}.json"), "w") as f:
        json.dump({"start": t0, "end": time.time(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)
    return _subset(ctx)


def noded(ctx):
    """Records the Ray node it ran on, with its start and end; first waits (up to 60 s) until
    `together` probes have started, so that a test can see trials share a node at once."""
    import glob

    import ray

    extra = ctx.params.model_extra or {}
    log, name = extra["log"], f"{ctx.seed}-{ctx.ipc}"
    node, t0 = ray.get_runtime_context().get_node_id(), time.time()
    with open(os.path.join(log, f"{name}.started"), "w") as f:
        f.write(node)
    deadline = t0 + 60
    while len(glob.glob(os.path.join(log, "*.started"))) < int(extra.get("together", 0)) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(float(extra.get("seconds", 0.0)))
    with open(os.path.join(log, f"{name}.json"), "w") as f:
        json.dump({"node": node, "start": t0, "end": time.time(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)
    return _subset(ctx)


def counted(ctx):
    """Appends one line per call to `<log>/calls` (one O_APPEND write: whole lines, even from two
    processes), then sleeps `seconds`: how a test counts how often each set was really made."""
    extra = ctx.params.model_extra or {}
    fd = os.open(os.path.join(extra["log"], "calls"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{ctx.seed}-{ctx.ipc}-{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    time.sleep(float(extra.get("seconds", 0.0)))
    return _subset(ctx)
