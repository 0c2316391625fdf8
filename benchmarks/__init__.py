"""Speed and memory benchmarks, run by hand (`make bench`), never as timed unit tests."""
