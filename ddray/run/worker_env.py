"""The worker's environment (`WorkerEnv`: store, data roots, cache budget, checkpoint interval)
and the real data a trial reads from it (`load_data`).

None of it changes a trial's numbers, so none of it is in a key: the same trial reads the same
data from `/data/cifar` on one node and `/mnt/cifar` on another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ddray.data import NodeCache, RealData, load_dataset
from ddray.protocols import Protocol
from ddray.trials import TrialConfig


@dataclass(frozen=True)
class WorkerEnv:
    """What a trial needs besides its config; none of it changes the numbers, so none is in a key."""

    store: str                                                    # absolute path or URI: workers run elsewhere
    roots: dict[str, str | None] = field(default_factory=dict)    # dataset name -> data root on the nodes
    checkpoint_every: int = 0                                     # epochs; 0 = about every 10%, at least 5
    cache_gb: float | None = None                                 # node cache budget (runtime.cache_gb); None: what the disk spares


def load_data(config: TrialConfig, env: WorkerEnv) -> RealData:
    """The real train/test split a config names, from the root the spec gave for it on this node,
    as its protocol sees it: ZCA-whitened (fitted on the whole train split, once per node) when
    the protocol says `zca`, so its arms, rdm subsets, test and validation splits all are."""
    ds = config.dataset
    data = load_dataset(ds.loader, env.roots.get(ds.name), field=f"datasets.{ds.name}.root",
                        cache=NodeCache.default(env.cache_gb), **ds.options)
    protocol = getattr(config, "protocol", None)
    if isinstance(protocol, Protocol) and protocol.zca:
        data = data.whitened(protocol.zca_eps)
    return data
