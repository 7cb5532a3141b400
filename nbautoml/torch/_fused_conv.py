"""Fused CNN ops: K members' feature maps packed along the channel axis, (B, K·C, *spatial).

Why this layout: K members' convolutions are then ONE grouped convolution (``groups=K``, weight
(K·Cout, Cin, k…)), and every per-channel op is the member's own op over K·C channels — batch norm
(running stats included), max / average pooling (``ceil_mode`` too), adaptive pooling. A member's
``GroupNorm(G, C)`` is ``group_norm`` with K·G groups: group g of member k spans exactly member k's channels,
and the per-channel affine is the members' weights laid end to end, so it is the member's own computation.
:class:`~._fused_layers.FusedNet` packs once, where the first of these ops meets its (K, B, C, *S) input, and
goes back to the (K, B, F) layout of the linear layers once, at the Flatten (a view, no copy): consecutive
conv / norm / activation / pool / dropout ops run with no permute or copy between them. 2-D maps are packed
channels-last: torch's CPU max pooling over many small NCHW planes was the slowest op of a fused digits CNN
(~10x slower than channels-last), and oneDNN's conv and batch norm keep the format from there on.

Stored parameters keep their leading K dim (conv weights (K, Cout, Cin, k…), biases (K, Cout)): the fused
optimizer broadcasts its per-member K-vectors over that dim, :meth:`~._fused_layers.FusedNet.export` indexes
it, and the grouped-conv weight is a free reshape of it in the forward. Batch norm over features (the MLP's,
(K, B, H)) is the same op: packing (K, B, H) gives (B, K·H).

:func:`dropout` draws per-member masks in either layout ("exact": each member from its own generator, with
the shape ``F.dropout`` would see on the member's own tensor, so the masks equal its one-by-one twin's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PACKED", "dropout", "pack", "parse", "run", "unpack"]

Op = tuple[Any, ...]
PACKED = ("conv", "bn", "gn", "pool")
"""Op kinds that run on the packed (B, K·C, *S) layout."""
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
          nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


def pack(x: torch.Tensor) -> torch.Tensor:
    """(K, B, C, *S) → (B, K·C, *S): member k's channels at k·C..(k+1)·C (one copy; 2-D maps channels-last)."""
    k, b, c = x.shape[:3]
    if x.dim() == 5:
        h, w = x.shape[3:]
        return x.permute(1, 3, 4, 0, 2).contiguous().view(b, h, w, k * c).permute(0, 3, 1, 2)
    return x.transpose(0, 1).reshape(b, k * c, *x.shape[3:])


def unpack(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K·C, *S) → (K, B, C, *S): a view (for channels-last maps, where S is 1x1 as after global pooling)."""
    return x.reshape(x.shape[0], k, x.shape[1] // k, *x.shape[2:]).transpose(0, 1)


def parse(mods: Sequence[nn.Module], param: Callable[[str], int], buffer: Callable[[str], int]) -> list[Op] | None:
    """The op of K corresponding conv / norm / pool modules (same type and repr, checked by the caller), or
    None for another kind of module. ``param`` / ``buffer`` give a named tensor's index in the fused lists."""
    first = mods[0]
    if isinstance(first, (nn.Conv1d, nn.Conv2d)):
        if first.padding_mode != "zeros":
            raise TypeError(f"only zero-padded convolutions can be fused, not padding_mode={first.padding_mode!r}")
        conv = F.conv1d if isinstance(first, nn.Conv1d) else F.conv2d
        bias = param("bias") if first.bias is not None else None
        return [("conv", conv, param("weight"), bias, first.stride, first.padding, first.dilation, first.groups)]
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not (first.affine and first.track_running_stats) or first.momentum is None:
            raise TypeError("only affine batch norm with running stats and a momentum can be fused")
        stats = tuple(buffer(n) for n in ("running_mean", "running_var", "num_batches_tracked"))
        return [("bn", param("weight"), param("bias"), *stats, first.eps, first.momentum)]
    if isinstance(first, nn.GroupNorm):
        affine = (param("weight"), param("bias")) if first.affine else (None, None)
        return [("gn", first.num_groups, *affine, first.eps)]
    if isinstance(first, _POOLS):
        if getattr(first, "return_indices", False):
            raise TypeError("pooling that returns indices cannot be fused")
        return [("pool", first)]
    return None


def run(op: Op, x: torch.Tensor, k: int, p: list[torch.Tensor], buf: list[torch.Tensor],
        training: bool) -> torch.Tensor:
    """One :data:`PACKED` op on a packed (B, K·C, *S) tensor."""
    kind = op[0]
    if kind == "conv":
        _, conv, w, b, stride, padding, dilation, groups = op
        weight = p[w].reshape(-1, *p[w].shape[2:])  # (K, Cout, Cin/g, k…) → (K·Cout, Cin/g, k…): a view
        bias = p[b].reshape(-1) if b is not None else None
        return conv(x, weight, bias, stride, padding, dilation, groups * k)
    if kind == "bn":
        _, w, b, mean, var, count, eps, momentum = op
        out = F.batch_norm(x, buf[mean].view(-1), buf[var].view(-1), p[w].reshape(-1), p[b].reshape(-1), training,
                           momentum, eps)
        if training:
            buf[count].add_(1)
        return out
    if kind == "gn":
        _, groups, w, b, eps = op
        return F.group_norm(x, groups * k, p[w].reshape(-1) if w is not None else None,
                            p[b].reshape(-1) if b is not None else None, eps)
    return op[1](x)  # pool: per channel, packed or not


def dropout(x: torch.Tensor, packed: bool, keep: list[float], keep_t: torch.Tensor, rng: str,
            generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Inverted dropout with member k's keep probability ``keep[k]``, on (K, B, …) or packed (B, K·C, …)."""
    k = len(keep)
    if rng == "exact":  # each member's own generator, drawn exactly as F.dropout draws on CPU
        own = (x.shape[0], x.shape[1] // k, *x.shape[2:]) if packed else x.shape[1:]
        masks = [torch.ones(own, dtype=x.dtype, device=x.device) if q >= 1.0 else
                 torch.empty(own, dtype=x.dtype, device=x.device).bernoulli_(q, generator=g).div_(q)
                 for q, g in zip(keep, generators, strict=True)]
        return x * torch.stack(masks, dim=1 if packed else 0).view_as(x)
    # "fast": one draw for the group, each member at its own rate
    view = x.reshape(x.shape[0], k, -1) if packed else x
    q = keep_t.to(x.dtype).view(*((1, k, 1) if packed else (k,) + (1,) * (x.dim() - 1)))
    return (view * torch.empty_like(view).bernoulli_(q.expand_as(view)).div_(q)).view_as(x)
