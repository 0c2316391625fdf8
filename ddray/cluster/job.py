"""The driver of a job that `ddray submit` sent: `python -m ddray.cluster.job ARGS` is `ddray ARGS`.

Why a module and not the `ddray` script: the job brings ddray in its runtime env (py_modules), so
the cluster may have no ddray installed and no `ddray` on its PATH, while Ray puts the shipped
package on the job's PYTHONPATH. Why the first line of output: the job log then says which ddray
ran and from where (a folder under Ray's `runtime_resources/py_modules_files/` when it came with
the job).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def provenance() -> str:
    """`ddray VERSION from FOLDER`: the ddray this interpreter imports."""
    import ddray

    return f"ddray {ddray.__version__} from {Path(ddray.__file__).resolve().parent}"


def main(argv: Sequence[str] | None = None) -> None:
    print(provenance(), flush=True)
    from ddray.cli import app

    app(args=list(sys.argv[1:] if argv is None else argv), prog_name="ddray")


if __name__ == "__main__":
    main()
