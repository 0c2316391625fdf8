"""Resume checkpoints of long trials, kept in the store so a retry on any node continues them."""

from __future__ import annotations

import io
from typing import Any

from ddray.store.store import Store


class StoreCheckpointer:
    """Saves a trial's training state every `every` epochs under artifacts/ckpt/<key>/."""

    def __init__(self, store: Store, key: str, every: int):
        self.store, self.key, self.every = store, key, every

    def save(self, state: dict[str, Any]) -> None:
        import torch  # lazily: listing a store must not pay torch's import

        buf = io.BytesIO()
        torch.save(state, buf)
        self.store.put_artifact("ckpt", self.key, "state.pt", buf.getvalue())

    def load(self) -> dict[str, Any] | None:
        data = self.store.get_artifact("ckpt", self.key, "state.pt")
        if data is None:
            return None
        import torch

        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def clear(self) -> None:
        self.store.drop_artifacts("ckpt", self.key)
