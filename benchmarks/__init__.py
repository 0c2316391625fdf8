"""Speed and memory benchmarks, run by hand (`make bench`), never as timed unit tests."""


def run_module(parse, worker, main) -> None:
    """The `python -m benchmarks.X` entry of a benchmark whose processes re-run it as `--worker`."""
    import sys

    ns = parse(sys.argv[1:])
    if ns.worker:
        worker(ns)
    else:
        main(sys.argv[1:])
