"""Live tensor memory and matmul FLOPs of a computation, counted op by op: works on fake (meta) tensors,
so the cost of a training step is known without allocating it."""

from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_iter

from linctl.runtime.flops import flop_registry

YOUNG_OPS = 8  # a storage that outlives this many ops is checked only when the peak may grow


class LiveMemory(TorchDispatchMode):
    """Bytes of the tensor storages alive after each op, and their peak.

    Every storage an op returns is registered with its size; a storage is alive until torch frees it
    (a weak reference expires). Temporaries die young, so recent storages are checked after every op,
    older ones (weights, optimizer state, saved activations) only when the running total could set a
    new peak — the peak stays exact, the cost stays linear. Kernel workspaces are not counted.

    ``flops`` sums torch's matmul FLOP formulas over the same ops (as ``FlopCounterMode`` does, without
    its per-module bookkeeping, which would double the cost of a trace).
    """

    def __init__(self) -> None:
        super().__init__()
        self.young: dict[int, tuple[StorageWeakRef, int, int]] = {}  # cdata -> (ref, bytes, op index)
        self.old: dict[int, tuple[StorageWeakRef, int, int]] = {}
        self.pinned: set[int] = set()  # storages counted once and never checked again
        self.live = 0  # bytes registered and not yet seen freed: exact after a full sweep
        self.peak = 0
        self.ops = 0
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        for value in tree_iter(out):
            if isinstance(value, torch.Tensor):
                self._register(value.untyped_storage())
        self._sweep_young()
        if self.live > self.peak:
            self._sweep(self.old)
            self.peak = max(self.peak, self.live)
        return out

    def settle(self) -> int:
        """Return the exact bytes alive now."""
        self._sweep(self.young)
        self._sweep(self.old)
        return self.live

    def pin(self) -> None:
        """Take the storages alive now as outliving what follows (weights, optimizer state): counted, no
        longer checked, so that a step's cost does not grow with the model's parameter count."""
        self.settle()
        self.pinned.update(self.young, self.old)
        self.young.clear()
        self.old.clear()

    def reset_peak(self) -> int:
        """Start a new peak from what is alive now; return it."""
        self.peak = self.settle()
        return self.peak

    def _register(self, storage: torch.UntypedStorage) -> None:
        ref = StorageWeakRef(storage)
        if ref.cdata in self.pinned:  # a view of a weight, or an in-place update of one
            return
        for table in (self.young, self.old):
            known = table.get(ref.cdata)
            if known is not None:
                if not known[0].expired():
                    return
                del table[ref.cdata]  # freed and its address reused by this new storage
                self.live -= known[1]
        size = storage.nbytes()
        self.young[ref.cdata] = (ref, size, self.ops)
        self.live += size

    def _sweep_young(self) -> None:
        for cdata, (ref, size, born) in list(self.young.items()):
            if ref.expired():
                del self.young[cdata]
                self.live -= size
            elif self.ops - born > YOUNG_OPS:
                self.old[cdata] = self.young.pop(cdata)

    def _sweep(self, table: dict[int, tuple[StorageWeakRef, int, int]]) -> None:
        for cdata, (ref, size, _) in list(table.items()):
            if ref.expired():
                del table[cdata]
                self.live -= size
