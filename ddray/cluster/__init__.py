"""Cluster side of ddray: offline checks of cluster files, Ray Job submission, and a laptop
cluster that autoscales fake-GPU nodes (see cluster/README.md)."""

from __future__ import annotations

from ddray.cluster.local import LocalCluster, start_local_cluster, stop_local_cluster
from ddray.cluster.submit import submit
from ddray.cluster.validate import check_cluster_file, validate_cluster_file

__all__ = ["LocalCluster", "check_cluster_file", "start_local_cluster", "stop_local_cluster",
           "submit", "validate_cluster_file"]
