"""A KV cache for many independent sequences decoded together (continuous batching).

Row r holds one request's keys and values, padded to the context: its first ``lengths[r]`` positions
are real, the rest are ignored. Each row continues at its own position, and ``key_bias`` stops a query
from seeing keys its row has not reached, so a row's logits equal those of the same sequence decoded alone.
The first ``rows`` rows take part in a forward; the caller (gptlab.generate.engine) keeps them packed and
calls ``begin`` before each forward (or takes ``rows_view``s of disjoint rows, one forward each).
"""

from __future__ import annotations

import threading

import torch

from .attention import KVCache, positions_rotary


class BatchLayerKV:
    """Keys and values of one attention layer for every row: storage (capacity, nh, block_size, hs)."""

    def __init__(self, owner: BatchKVCache) -> None:
        self.owner = owner
        self.k: torch.Tensor | None = None  # allocated on the first put, when nh and hs are known
        self.v: torch.Tensor | None = None

    def put(self, rows: torch.Tensor, kv, capacity: int, sequences: list[int] | slice = slice(None)) -> None:
        """Copy sequences ``sequences`` of a cache layer (LayerKV with k (B, nh, L, hs)) into rows ``rows``, in
        one copy."""
        if self.k is None or self.k.size(0) < capacity:
            with self.owner.lock:  # the engine may prefill on two threads at once: one storage, made once
                if self.k is None:
                    _, nh, _, hs = kv.k.shape
                    v = kv.k.new_zeros((capacity, nh, self.owner.block_size, hs))
                    self.v, self.k = v, torch.zeros_like(v)
                self.grow(capacity)
        L = kv.k.size(2)
        self.k[rows, :, :L] = kv.k[sequences]
        self.v[rows, :, :L] = kv.v[sequences]

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` rows (kept rows copied over); nothing to do before the first put."""
        if self.k is not None and self.k.size(0) < capacity:
            k = self.k.new_zeros((capacity, *self.k.shape[1:]))
            v = torch.zeros_like(k)
            k[: self.k.size(0)], v[: self.v.size(0)] = self.k, self.v
            self.k, self.v = k, v

    def move(self, src: int, dst: int, L: int) -> None:
        self.k[dst, :, :L] = self.k[src, :, :L]
        self.v[dst, :, :L] = self.v[src, :, :L]


class BatchKVCache:
    """One BatchLayerKV per layer (``storage``) and each row's length. Call ``begin(rows, T)`` before each forward:
    rows 0..rows-1 then take part, each feeding T new tokens at its own positions. The storage grows as rows
    are put, to at most ``max_rows`` rows (None: no bound), and is kept for reuse."""

    def __init__(self, n_layer: int, block_size: int, device: torch.device | str = "cpu",
                 max_rows: int | None = None) -> None:
        self.block_size, self.device, self.max_rows = block_size, torch.device(device), max_rows
        self.lock = threading.Lock()  # for making and growing the storage
        self.lengths: list[int] = []  # real positions per row
        self.storage = [BatchLayerKV(self) for _ in range(n_layer)]
        self.view: RowsView | None = None  # set by begin

    @property
    def layers(self) -> list[_LayerView]:
        """What the model reads per layer in the forward after ``begin``."""
        return self.view.layers

    @property
    def length(self) -> int:
        """The longest taking part row before this forward (what the context check needs)."""
        return self.view.length if self.view is not None else 0

    def begin(self, rows: int, T: int = 1) -> None:
        """Rows 0..rows-1 feed T tokens next: their positions, and the mask of the keys each query may see."""
        self.view = self.rows_view(0, rows, T)

    def rows_view(self, lo: int, hi: int, T: int = 1) -> RowsView:
        """Rows lo..hi-1 feed T tokens next, in a forward of their own: pass the view as the model's cache."""
        return RowsView(self, lo, hi, T)

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """Each taking part row's positions for its T new tokens, (rows, T)."""
        return self.view.positions(T, device)

    def row_length(self, row: int) -> int:
        return self.lengths[row]

    def put(self, row: int, cache: KVCache, index: int = 0) -> None:
        """Row ``row`` (0..len(rows), growing the storage as needed) takes sequence ``index`` of a prefilled
        KVCache (its sequences all of one length)."""
        self.put_rows([row], cache, [index])

    def put_rows(self, rows: list[int], cache: KVCache, sequences: list[int] | None = None) -> None:
        """Rows ``rows`` take sequences ``sequences`` (default: all, in order) of a prefilled KVCache, sequence
        j into rows[j], in one copy per layer; the storage grows as needed."""
        if max(rows) >= len(self.lengths):
            # doubling (by at least four rows) keeps the copies few; never past the rows decoded together
            self.reserve(max(2 * len(self.lengths), max(rows) + 1, 4), need=max(rows) + 1)
        index = torch.tensor(rows, device=self.device)
        chosen = slice(None) if sequences is None else sequences
        for layer, kv in zip(self.storage, cache.layers, strict=True):
            layer.put(index, kv, len(self.lengths), chosen)
        for row in rows:
            self.lengths[row] = cache.length

    def reserve(self, rows: int, need: int | None = None) -> None:
        """Room for ``rows`` rows (at most max_rows), made now: the engine reserves for every row of a step
        before its prefills, so that one growth (a copy of the whole storage) replaces several. Raises
        IndexError when ``need`` rows (default: rows) do not fit in max_rows."""
        need = rows if need is None else need
        if self.max_rows is not None:
            if need > self.max_rows:
                raise IndexError(f"row {need - 1} is past this cache's {self.max_rows} rows")
            rows = min(rows, self.max_rows)
        if rows <= len(self.lengths):
            return
        self.lengths += [0] * (rows - len(self.lengths))
        for layer in self.storage:
            layer.grow(rows)

    def move(self, src: int, dst: int) -> None:
        """Row ``src`` takes the place of row ``dst`` (whose contents are dropped)."""
        for layer in self.storage:
            layer.move(src, dst, self.lengths[src])
        self.lengths[dst] = self.lengths[src]


class RowsView:
    """Rows lo..hi-1 of a BatchKVCache for one forward, each feeding T new tokens at its own position: what the
    model reads as its cache. It has its own positions and mask and shares the storage, so views of disjoint
    rows can run their forwards at the same time (gptlab.generate.engine splits a big batch in two)."""

    def __init__(self, cache: BatchKVCache, lo: int, hi: int, T: int = 1) -> None:
        self.lo, self.hi, self.block_size, device = lo, hi, cache.block_size, cache.device
        lengths = torch.tensor(cache.lengths[lo:hi], dtype=torch.long, device=device)
        self.new_positions = lengths[:, None] + torch.arange(T, device=device)  # (rows, T)
        self.picked = torch.arange(lo, hi, device=device)[:, None]  # (rows, 1)
        self.length = max(cache.lengths[lo:hi], default=0)
        # query t of row r sits at position lengths[r] + t and may see keys 0..that position, not the padding
        visible = torch.arange(self.length + T, device=device) <= self.new_positions[:, None, :, None]
        # added to the scores (rows, 1, T, S): made once a forward, read by every layer
        self.key_bias = torch.zeros(visible.shape, device=device).masked_fill(~visible, float("-inf"))
        cache.lengths[lo:hi] = [n + T for n in cache.lengths[lo:hi]]
        self.layers = [_LayerView(self, layer) for layer in cache.storage]
        self._rotary: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # per head size, made by the first layer

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        """Each row's positions for its T new tokens, (rows, T)."""
        return self.new_positions.to(device)

    def rotary(self, head_size: int, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos and sin for each row's T new tokens, each (rows, 1, T, hs/2), made once per forward: the rows
        of the context's one table (positions_rotary), which the scripted decode step reads too."""
        if head_size not in self._rotary:
            cos, sin = positions_rotary(head_size, 0, self.block_size, device)
            positions = self.positions(T, device)
            self._rotary[head_size] = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
        return self._rotary[head_size]


class _LayerView:
    """One layer of a RowsView: the LayerKV interface the attention reads."""

    def __init__(self, view: RowsView, storage: BatchLayerKV) -> None:
        self.view, self.storage = view, storage

    @property
    def length(self) -> int:
        return self.view.length

    @property
    def key_bias(self) -> torch.Tensor:
        return self.view.key_bias

    def positions(self, T: int, device: torch.device) -> torch.Tensor:
        return self.view.positions(T, device)

    def rotary(self, head_size: int, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view.rotary(head_size, T, device)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the view's new keys/values (rows, nh, T, hs) at each row's own positions; return its rows' keys
        and values so far, (rows, nh, S, hs) with S the view's longest row plus T."""
        view, storage = self.view, self.storage
        storage.k[view.picked, :, view.new_positions] = k.transpose(1, 2)  # the indexed view is (rows, T, nh, hs)
        storage.v[view.picked, :, view.new_positions] = v.transpose(1, 2)
        S = view.key_bias.size(-1)
        return storage.k[view.lo:view.hi, :, :S], storage.v[view.lo:view.hi, :, :S]
