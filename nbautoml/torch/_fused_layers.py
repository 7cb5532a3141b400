"""The pieces of fused training: K same-shape models as stacked tensors, their optimizer, losses and metrics.

:class:`FusedNet` is built *from K reference models* (what :func:`nbautoml.torch.models.build` returns for
each configuration: MLPs and CNNs), walked in lockstep: every parameter and buffer becomes one tensor with a
leading K dim, ``nn.Linear`` becomes ``torch.baddbmm``, batch norm one ``F.batch_norm`` over K·H channels, and
a CNN's conv / norm / pool ops run on maps packed along the channel axis, a convolution as one grouped
convolution (:mod:`._fused_conv`). So each member starts from exactly the weights its one-by-one twin would,
and :meth:`FusedNet.export` writes a member back into its reference model, whose ``state_dict`` is then the one
train() would have saved. Linear weights are kept transposed, (K, in, out): neither the forward nor the
backward pass then copies layouts. Dropout may differ per member (its rate is not structural; the families
leave the module out at rate 0): with ``rng="exact"`` each member draws its masks from its own CPU generator in
the same order and shapes ``F.dropout`` draws from the global one, so a fused member and its one-by-one twin
see identical masks; ``"fast"`` draws one mask tensor for the whole group (the GPU default).

:class:`FusedOptimizer` re-implements torch's single-tensor SGD / momentum / Nesterov / RMSprop / Adam /
AdamW updates with a per-member lr, weight decay and momentum (K-vectors broadcast over each parameter), in
the same operation order, so fused and one-by-one runs agree to float rounding. Members that stop are
dropped from every tensor (:meth:`FusedNet.select`, :meth:`FusedOptimizer.select`): a pruned configuration
costs nothing afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from nbautoml.torch import _fitdata as fd
from nbautoml.torch import _fused_conv as fc
from nbautoml.torch.families._blocks import Residual

__all__ = ["FusedEvaluator", "FusedNet", "FusedOptimizer", "member_losses"]

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.LeakyReLU, nn.Sigmoid)
Op = tuple[Any, ...]


class FusedNet:
    """K models of one architecture (Sequential / Linear / Conv / norms / pools / activations / residual /
    dropout)."""

    def __init__(self, refs: Sequence[nn.Module], device: torch.device, rng: str = "fast",
                 generators: Sequence[torch.Generator | None] | None = None) -> None:
        if not refs:
            raise ValueError("FusedNet needs at least one model")
        self.k = len(refs)
        self._index = [{id(p): j for j, p in enumerate(r.parameters())} for r in refs]
        self._bindex = [{id(b): j for j, b in enumerate(r.buffers())} for r in refs]
        self._keep: list[list[float]] = []  # per dropout slot, per member keep probability
        self.tposed: set[int] = set()  # Linear weights, kept as (K, in, out): no layout copies in backward
        self.plan = self._parse(list(refs))
        with torch.no_grad():
            self.params = [torch.stack([self.layout(j, p.detach()) for p in ps]).to(device).requires_grad_()
                           for j, ps in enumerate(zip(*(r.parameters() for r in refs), strict=True))]
            self.buffers = [torch.stack([b.detach() for b in bs]).to(device)
                            for bs in zip(*(r.buffers() for r in refs), strict=True)]
        self.device = device
        self.rng = rng
        self.generators = list(generators) if generators is not None else [None] * self.k
        self._keep_t = [torch.tensor(keep, dtype=torch.float32, device=device) for keep in self._keep]

    # ---- structure ---------------------------------------------------------------------------------------
    def _parse(self, mods: list[nn.Module]) -> list[Op]:
        """The ops of K corresponding modules; raises TypeError where they differ or cannot be fused."""
        first = mods[0]
        if isinstance(first, nn.Sequential):
            return self._parse_sequence(mods)
        for other in mods[1:]:
            if type(other) is not type(first) or (not isinstance(first, Residual) and repr(other) != repr(first)):
                raise TypeError(f"cannot fuse models of different shapes: {first!r} vs {other!r}")
        if isinstance(first, Residual):
            blocks = cast(list[Residual], mods)
            return [("res", self._parse([r.body for r in blocks]), self._parse([r.skip for r in blocks]))]
        if isinstance(first, nn.Identity):
            return []
        if isinstance(first, nn.Flatten):
            if first.start_dim != 1 or first.end_dim != -1:
                raise TypeError("only Flatten() over all non-batch dims can be fused")
            return [("flatten",)]
        if isinstance(first, nn.Linear):
            bias = self._param(mods, "bias") if first.bias is not None else None
            weight = self._param(mods, "weight")
            self.tposed.add(weight)
            return [("linear", weight, bias)]
        conv = fc.parse(mods, lambda name: self._param(mods, name), lambda name: self._buffer(mods, name))
        if conv is not None:
            return conv
        if isinstance(first, nn.LayerNorm):
            if not first.elementwise_affine or first.bias is None or len(first.normalized_shape) != 1:
                raise TypeError("only LayerNorm(features) with weight and bias can be fused")
            return [("ln", self._param(mods, "weight"), self._param(mods, "bias"), first.eps)]
        if isinstance(first, _ELEMENTWISE):
            return [("act", first)]
        raise TypeError(f"cannot fuse {type(first).__name__} (fused training covers MLPs and CNNs)")

    def _parse_sequence(self, seqs: list[nn.Module]) -> list[Op]:
        """Children without Dropout must match; a Dropout after child i (any rate, or absent) is per member."""
        canon: list[list[nn.Module]] = []
        rates: list[dict[int, float]] = []
        for seq in seqs:
            if not isinstance(seq, nn.Sequential):
                raise TypeError(f"cannot fuse {type(seq).__name__} with a Sequential")
            kids: list[nn.Module] = []
            drop: dict[int, float] = {}
            for child in seq:
                if isinstance(child, nn.Dropout):
                    if not kids or len(kids) - 1 in drop:
                        raise TypeError("a Dropout first or right after another cannot be fused")
                    drop[len(kids) - 1] = float(child.p)
                else:
                    kids.append(child)
            canon.append(kids)
            rates.append(drop)
        if len({len(kids) for kids in canon}) != 1:
            raise TypeError("cannot fuse models with different numbers of layers")
        ops: list[Op] = []
        for i in range(len(canon[0])):
            ops += self._parse([kids[i] for kids in canon])
            if any(i in drop for drop in rates):
                ops.append(("drop", len(self._keep)))
                self._keep.append([1.0 - drop.get(i, 0.0) for drop in rates])
        return ops

    def _param(self, mods: list[nn.Module], name: str) -> int:
        found = {self._index[k][id(getattr(m, name))] for k, m in enumerate(mods)}
        if len(found) != 1:
            raise TypeError("cannot fuse models whose parameters are ordered differently")
        return found.pop()

    def _buffer(self, mods: list[nn.Module], name: str) -> int:
        found = {self._bindex[k][id(getattr(m, name))] for k, m in enumerate(mods)}
        if len(found) != 1:
            raise TypeError("cannot fuse models whose buffers are ordered differently")
        return found.pop()

    # ---- running -----------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """(K, B, *input) → (K, B, outputs)."""
        return self._run(self.plan, x, False, training)[0]

    def _run(self, ops: list[Op], x: torch.Tensor, packed: bool, training: bool) -> tuple[torch.Tensor, bool]:
        """``packed``: x is (B, K·C, *S) (:mod:`._fused_conv`), else (K, B, ...); converted only where an op
        needs the other layout, so a CNN packs once at its first conv and unpacks once at its Flatten."""
        p, buf = self.params, self.buffers
        for op in ops:
            kind = op[0]
            if kind in fc.PACKED:
                features = kind == "bn" and not packed and x.dim() == 3  # an MLP's (K, B, H): back after the op
                x = fc.run(op, x if packed else fc.pack(x), self.k, p, buf, training)
                x, packed = (fc.unpack(x, self.k), False) if features else (x, True)
            elif kind == "act":
                x = op[1](x)
            elif kind == "res":
                body, body_packed = self._run(op[1], x, packed, training)
                skip, skip_packed = self._run(op[2], x, packed, training)
                if body_packed != skip_packed:  # e.g. an identity skip around a block's first conv
                    body, skip = (t if was else fc.pack(t) for t, was in ((body, body_packed), (skip, skip_packed)))
                x, packed = body + skip, body_packed or skip_packed
            elif kind == "drop":
                if training and any(q < 1.0 for q in self._keep[op[1]]):
                    x = fc.dropout(x, packed, self._keep[op[1]], self._keep_t[op[1]], self.rng, self.generators)
            else:  # Flatten, Linear, LayerNorm: the (K, B, F) layout
                if packed:
                    x, packed = fc.unpack(x, self.k), False
                if kind == "flatten":
                    x = x.reshape(x.shape[0], x.shape[1], -1)
                elif kind == "linear":
                    w = p[op[1]]
                    x = torch.bmm(x, w) if op[2] is None else torch.baddbmm(p[op[2]].unsqueeze(1), x, w)
                elif kind == "ln":
                    x = F.layer_norm(x, x.shape[-1:], None, None, op[3])
                    x = torch.addcmul(p[op[2]].unsqueeze(1), x, p[op[1]].unsqueeze(1))
        return x, packed

    def select(self, keep: Sequence[int]) -> None:
        """Keep only these members (positions), in this order."""
        idx = torch.tensor(list(keep), dtype=torch.long, device=self.device)
        with torch.no_grad():
            self.params = [p.detach().index_select(0, idx).requires_grad_() for p in self.params]
            self.buffers = [b.index_select(0, idx) for b in self.buffers]
        self._keep = [[q[i] for i in keep] for q in self._keep]
        self._keep_t = [t.index_select(0, idx) for t in self._keep_t]
        self.generators = [self.generators[i] for i in keep]
        self.k = len(keep)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def host_copy(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """All parameters and buffers on the CPU (one transfer per tensor, not per member)."""
        return [p.detach().cpu() for p in self.params], [b.cpu() for b in self.buffers]

    def layout(self, j: int, t: torch.Tensor) -> torch.Tensor:
        """Parameter ``j`` of one member between the reference model's layout and the fused one (a transpose
        for Linear weights; its own inverse)."""
        return t.t() if j in self.tposed else t

    def export(self, host: tuple[list[torch.Tensor], list[torch.Tensor]], pos: int, ref: nn.Module) -> None:
        """Write member ``pos`` of a :meth:`host_copy` into its reference model."""
        params, buffers = host
        with torch.no_grad():
            for j, (dst, src) in enumerate(zip(ref.parameters(), params, strict=True)):
                dst.copy_(self.layout(j, src[pos]))
            for buf, src in zip(ref.buffers(), buffers, strict=True):
                buf.copy_(src[pos])

    def clip_grad_norm(self, max_norm: float) -> None:
        """Per-member ``nn.utils.clip_grad_norm_``: each member's grads scaled by its own total norm."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads])
        total = torch.linalg.vector_norm(norms, dim=0)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


class FusedOptimizer:
    """torch.optim's single-tensor updates with per-member lr / weight decay / momentum (module docstring)."""

    BETAS = (0.9, 0.999)
    ADAM_EPS = 1e-8
    RMS_ALPHA, RMS_EPS = 0.99, 1e-8

    def __init__(self, name: str, params: list[torch.Tensor], *, lr: Sequence[float],
                 weight_decay: Sequence[float], momentum: Sequence[float], per_member: bool | None = None) -> None:
        self.name = name
        dev = params[0].device
        self.lr = torch.tensor(list(lr), dtype=torch.float64, device=dev)
        self.wd = torch.tensor(list(weight_decay), dtype=torch.float64, device=dev)
        self.momentum = torch.tensor(list(momentum), dtype=torch.float32, device=dev)
        self.any_wd = any(w != 0 for w in weight_decay)
        self.steps = [0.0] * len(lr)  # per member (resumed members may differ); plain floats, no device sync
        keys = {"sgd": (), "momentum": ("momentum_buffer",), "nesterov": ("momentum_buffer",),
                "rmsprop": ("square_avg",), "adam": ("exp_avg", "exp_avg_sq"),
                "adamw": ("exp_avg", "exp_avg_sq")}[name]
        self.keys = keys
        self.state = [{key: torch.zeros_like(p, memory_format=torch.contiguous_format) for key in keys}
                      for p in params]
        # On CPU, torch's fused Adam kernel once per member (one pass instead of seven batched ones) is faster;
        # on a GPU that would be K launches a step, so the batched form stays there.
        auto = dev.type == "cpu" and hasattr(torch, "_fused_adam_")
        self.per_member = name in ("adam", "adamw") and (auto if per_member is None else per_member)
        self._step_t: list[list[torch.Tensor]] = [[torch.tensor(0.0) for _ in params] for _ in lr]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], factor: torch.Tensor | None = None) -> None:
        """One update; ``factor`` (K,) multiplies each member's base lr (its schedule at this batch).

        Per-member scalars are computed once per step in float64 (as torch does in Python) and cast once;
        each parameter then sees the same operations, in the same order, as torch's single-tensor loop."""
        name = self.name
        lr = self.lr if factor is None else self.lr * factor
        if self.per_member:
            self._step_members(params, lr)
            return
        self.steps = [s + 1 for s in self.steps]
        neg_lr = (-lr).float()
        wd = self.wd.float() if self.any_wd and name != "adamw" else None
        decay = (1 - lr * self.wd).float() if self.any_wd and name == "adamw" else None
        bc2: float | torch.Tensor = 1.0
        if name in ("adam", "adamw"):
            b1, b2 = self.BETAS
            if len(set(self.steps)) == 1:  # the usual case: plain floats, exactly torch's arithmetic
                n = self.steps[0]
                neg_step = (-lr / (1 - b1**n)).float()
                bc2 = (1 - b2**n) ** 0.5
            else:
                steps = torch.tensor(self.steps, dtype=torch.float64, device=lr.device)
                neg_step = (-lr / (1 - b1**steps)).float()
                bc2 = torch.sqrt(1 - b2**steps).float()
        for p, st in zip(params, self.state, strict=True):
            g = p.grad
            if g is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            if decay is not None:
                p.mul_(decay.view(shape))
            elif wd is not None:
                g.addcmul_(p, wd.view(shape))  # torch adds into a copy; the grad is dropped after the step anyway
            if name in ("adam", "adamw"):
                st["exp_avg"].lerp_(g, 1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                scale = bc2 if isinstance(bc2, float) else bc2.view(shape)
                denom = st["exp_avg_sq"].sqrt().div_(scale).add_(self.ADAM_EPS)
                p.addcdiv_(st["exp_avg"] * neg_step.view(shape), denom)
            elif name == "rmsprop":
                sq = st["square_avg"]
                sq.mul_(self.RMS_ALPHA).addcmul_(g, g, value=1 - self.RMS_ALPHA)
                p.addcdiv_(g * neg_lr.view(shape), sq.sqrt().add_(self.RMS_EPS))
            else:
                if name in ("momentum", "nesterov"):
                    buf = st["momentum_buffer"]
                    mom = self.momentum.view(shape)
                    buf.mul_(mom).add_(g)  # a zero buffer gives torch's first step (buf = grad) exactly
                    g = torch.addcmul(g, buf, mom) if name == "nesterov" else buf
                p.addcmul_(g, neg_lr.view(shape))

    def _step_members(self, params: list[torch.Tensor], lr: torch.Tensor) -> None:
        update = torch._fused_adamw_ if self.name == "adamw" else torch._fused_adam_
        b1, b2 = self.BETAS
        lrs, wds = lr.tolist(), self.wd.tolist()
        for k in range(len(lrs)):
            grads = [p.grad[k] for p in params if p.grad is not None]
            if len(grads) != len(params):
                raise RuntimeError("fused Adam needs a gradient for every parameter")
            torch._foreach_add_(self._step_t[k], 1.0)  # torch.optim increments before the kernel, too
            update([p[k] for p in params], grads, [st["exp_avg"][k] for st in self.state],
                   [st["exp_avg_sq"][k] for st in self.state], [], self._step_t[k], lr=lrs[k], beta1=b1,
                   beta2=b2, weight_decay=wds[k], eps=self.ADAM_EPS, amsgrad=False, maximize=False)
            self.steps[k] += 1

    def select(self, keep: Sequence[int]) -> None:
        self._step_t = [self._step_t[i] for i in keep]
        idx = torch.tensor(list(keep), dtype=torch.long, device=self.lr.device)
        self.lr, self.wd, self.momentum = (t.index_select(0, idx) for t in (self.lr, self.wd, self.momentum))
        self.steps = [self.steps[i] for i in keep]
        self.state = [{k: v.index_select(0, idx) for k, v in st.items()} for st in self.state]

    def host_state(self) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
        """The whole state on the CPU (one transfer per tensor), for :meth:`export`."""
        return [{k: v.cpu() for k, v in st.items()} for st in self.state], list(self.steps)

    def export(self, host: tuple[list[dict[str, torch.Tensor]], list[float]], pos: int,
               ref_opt: torch.optim.Optimizer, layout: Callable[[int, torch.Tensor], torch.Tensor]) -> None:
        """Write member ``pos`` of a :meth:`host_state` into a torch optimizer over its reference model."""
        params = [p for group in ref_opt.param_groups for p in group["params"]]
        states, steps = host
        ref_opt.state.clear()
        if steps[pos] == 0 or not self.keys:
            return
        for j, (p, st) in enumerate(zip(params, states, strict=True)):
            entry: dict[str, Any] = {k: layout(j, st[k][pos]).clone() for k in self.keys}
            if self.name in ("rmsprop", "adam", "adamw"):
                entry["step"] = torch.tensor(steps[pos], dtype=torch.float32)
            ref_opt.state[p] = entry

    def load(self, pos: int, ref_opt: torch.optim.Optimizer,
             layout: Callable[[int, torch.Tensor], torch.Tensor]) -> None:
        """Read member ``pos``'s state from a torch optimizer (a resumed checkpoint's)."""
        params = [p for group in ref_opt.param_groups for p in group["params"]]
        steps = [float(s["step"]) for s in ref_opt.state.values() if "step" in s]
        self.steps[pos] = steps[0] if steps else float(bool(ref_opt.state))
        for t in self._step_t[pos]:
            t.fill_(self.steps[pos])
        with torch.no_grad():
            for j, (p, st) in enumerate(zip(params, self.state, strict=True)):
                saved = ref_opt.state.get(p, {})
                for key in self.keys:
                    if saved.get(key) is not None:
                        st[key][pos].copy_(layout(j, saved[key]))


def member_losses(loss: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor], out: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor:
    """(K,) mean loss of each member: out (K, B, outputs), y (K, B[, columns])."""
    k, b = y.shape[0], y.shape[1]
    per = loss(out.reshape(k * b, *out.shape[2:]), y.reshape(k * b, *y.shape[2:]), "none")
    return per.reshape(k, -1).mean(dim=1)


class FusedEvaluator(fd.Sums):
    """:class:`nbautoml.torch._fitdata.Evaluator` for K members at once (each sum has a leading K dim;
    ``y_mean`` is (K, columns) for regression): one host sync in :meth:`result`."""

    def update(self, out: torch.Tensor, y: torch.Tensor) -> None:
        k, b = y.shape[0], y.shape[1]
        out = out.float()
        flat_y = y.reshape(k * b, *y.shape[2:])
        self._add("loss", self.loss(out.reshape(k * b, *out.shape[2:]), flat_y, "none").reshape(k, -1).sum(1))
        self.n += b
        if self.task == "classification":
            self._add("correct", (out.argmax(dim=-1) == y).sum(dim=1))
        elif self.task == "binary":
            self._add("correct", ((out.reshape(y.shape) > 0).float() == y).sum(dim=1))
        else:
            assert self.y_mean is not None
            err = (out.reshape(y.shape) - y).reshape(k, b, -1)
            centred = y.reshape(k, b, -1) - self.y_mean.unsqueeze(1)
            self._add("sse", (err * err).sum(dim=1))
            self._add("sst", (centred * centred).sum(dim=1))
            self._add("sae", err.abs().reshape(k, -1).sum(dim=1))

    def result(self) -> list[dict[str, float]]:
        parts = {key: value.cpu() for key, value in self.parts.items()}
        return [fd.metrics_of({key: value[i] for key, value in parts.items()}, self.task, self.n)
                for i in range(len(parts["loss"]))]
