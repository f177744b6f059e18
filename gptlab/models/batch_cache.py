"""A KV cache for many independent sequences decoded together (continuous batching).

Row r holds one request's keys and values, padded to the context: its first ``lengths[r]`` positions
are real, the rest are ignored. Each row continues at its own position, and ``key_bias`` stops a query
from seeing keys its row has not reached, so a row's logits equal those of the same sequence decoded alone.
The first ``rows`` rows take part in a forward; the caller (gptlab.generate.engine) keeps them packed and
calls ``begin`` before each forward.
"""

from __future__ import annotations

import torch

from .attention import KVCache


class BatchLayerKV:
    """Keys and values of one attention layer for every row: storage (capacity, nh, block_size, hs)."""

    def __init__(self, owner: BatchKVCache) -> None:
        self.owner = owner
        self.k: torch.Tensor | None = None  # allocated on the first put, when nh and hs are known
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.owner.length

    @property
    def key_bias(self) -> torch.Tensor:
        return self.owner.key_bias

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        return self.owner.positions(T, device)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys/values (rows, nh, T, hs) at each row's own positions; return (rows, nh, S, hs)."""
        owner = self.owner
        self.k[owner.picked, :, owner.new_positions] = k.transpose(1, 2)  # the indexed view is (rows, T, nh, hs)
        self.v[owner.picked, :, owner.new_positions] = v.transpose(1, 2)
        S = owner.key_bias.size(-1)
        return self.k[: owner.rows, :, :S], self.v[: owner.rows, :, :S]

    def put(self, row: int, kv, capacity: int, index: int) -> None:
        """Copy sequence ``index`` of a cache layer (LayerKV with k (B, nh, L, hs)) into ``row``."""
        if self.k is None or self.k.size(0) < capacity:
            _, nh, _, hs = kv.k.shape
            k = kv.k.new_zeros((capacity, nh, self.owner.block_size, hs))
            v = torch.zeros_like(k)
            if self.k is not None:
                k[: self.k.size(0)], v[: self.v.size(0)] = self.k, self.v
            self.k, self.v = k, v
        L = kv.k.size(2)
        self.k[row, :, :L] = kv.k[index]
        self.v[row, :, :L] = kv.v[index]

    def move(self, src: int, dst: int, L: int) -> None:
        self.k[dst, :, :L] = self.k[src, :, :L]
        self.v[dst, :, :L] = self.v[src, :, :L]


class BatchKVCache:
    """One BatchLayerKV per layer and each row's length. Call ``begin(rows, T)`` before each forward:
    rows 0..rows-1 then take part, each feeding T new tokens at its own positions. The storage grows as rows
    are put, to at most ``max_rows`` rows (None: no bound), and is kept for reuse."""

    def __init__(self, n_layer: int, block_size: int, device: torch.device | str = "cpu",
                 max_rows: int | None = None) -> None:
        self.block_size, self.device, self.max_rows = block_size, torch.device(device), max_rows
        self.rows = 0
        self.lengths: list[int] = []  # real positions per row
        self.layers = [BatchLayerKV(self) for _ in range(n_layer)]
        self.new_positions = self.picked = self.key_bias = None  # set by begin
        self._past = 0

    @property
    def length(self) -> int:
        """The longest taking part row before this forward (what the context check needs)."""
        return self._past

    def begin(self, rows: int, T: int = 1) -> None:
        """Rows 0..rows-1 feed T tokens next: their positions, and the mask of the keys each query may see."""
        self.rows = rows
        lengths = torch.tensor(self.lengths[:rows], dtype=torch.long, device=self.device)
        self.new_positions = lengths[:, None] + torch.arange(T, device=self.device)  # (rows, T)
        self.picked = torch.arange(rows, device=self.device)[:, None]  # (rows, 1)
        self._past = max(self.lengths[:rows], default=0)
        # query t of row r sits at position lengths[r] + t and may see keys 0..that position, not the padding
        S = self._past + T
        visible = torch.arange(S, device=self.device) <= self.new_positions[:, None, :, None]  # (rows, 1, T, S)
        # added to the scores: made once a step, read by every layer
        self.key_bias = torch.zeros(visible.shape, device=self.device).masked_fill(~visible, float("-inf"))
        self.lengths[:rows] = [n + T for n in self.lengths[:rows]]

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """Each taking part row's positions for its T new tokens, (rows, T)."""
        return self.new_positions.to(device)

    def row_length(self, row: int) -> int:
        return self.lengths[row]

    def put(self, row: int, cache: KVCache, index: int = 0) -> None:
        """Row ``row`` (0..len(rows), growing the storage as needed) takes sequence ``index`` of a prefilled
        KVCache (its sequences all of one length)."""
        if row >= len(self.lengths):
            # doubling (by at least four rows) keeps the copies few; never past the rows decoded together
            grown = max(2 * len(self.lengths), row + 1, 4)
            if self.max_rows is not None:
                if row >= self.max_rows:
                    raise IndexError(f"row {row} is past this cache's {self.max_rows} rows")
                grown = min(grown, self.max_rows)
            self.lengths += [0] * (grown - len(self.lengths))
        for layer, kv in zip(self.layers, cache.layers, strict=True):
            layer.put(row, kv, len(self.lengths), index)
        self.lengths[row] = cache.length

    def move(self, src: int, dst: int) -> None:
        """Row ``src`` takes the place of row ``dst`` (whose contents are dropped)."""
        for layer in self.layers:
            layer.move(src, dst, self.lengths[src])
        self.lengths[dst] = self.lengths[src]
