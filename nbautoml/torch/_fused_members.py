"""Per-member bookkeeping of :func:`nbautoml.torch.fused.train_fused`: seeds, stop polling, epoch ends.

Kept apart so the fused loop reads in one screen. ``epoch_end`` does for each member what train() does after
an epoch — history, best epoch, ``checkpoint.pt`` (train()'s layout and save helpers, so either loop resumes
the other's checkpoints), the report, the stop decision — in train()'s order. One departure, for speed: best
weights stay on the device (:class:`BestWeights`) and ``best.pt`` is written once, when the member finishes
(train() rewrites it at every improvement); a killed member's best epoch survives in ``checkpoint.pt``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nbautoml.engine.direction import better
from nbautoml.engine.trial import Trial
from nbautoml.torch._fused_layers import FusedNet, FusedOptimizer
from nbautoml.torch._optim import LRSchedule
from nbautoml.torch._training_common import State, cpu_state, save_best, save_checkpoint

__all__ = ["BestWeights", "FusedMember", "epoch_end", "finish", "member_seed", "positions", "shared_param", "stopping",
           "take_rows", "trial_seed"]


def trial_seed(base: int, trial: Trial) -> int:
    """A trial's training seed: fit's rule for fold 0, so a fused trial equals fit's one-by-one one."""
    return base * 100003 + trial.number * 101


class FusedMember:
    """One configuration of a fused group: its trial, reference model, optimizer format, schedule, RNGs."""

    def __init__(self, pos: int, trial: Trial | None, params: dict[str, Any], seed: int, hyper: dict[str, Any]):
        self.pos, self.trial, self.params, self.seed, self.hyper = pos, trial, params, seed, hyper
        self.split_seed = seed
        self.state = State()
        self.ckpt: dict[str, Any] | None = None
        self.shuffle = torch.Generator()
        self.shuffle.manual_seed(seed)
        self.folder = trial.checkpoint_dir if trial is not None else None
        self.ref: torch.nn.Module
        self.opt: torch.optim.Optimizer
        self.sched: LRSchedule
        self.gen: torch.Generator | None = None
        self.device_best = False  # its best epoch's weights are in BestWeights, not yet in state.best_weights

    @property
    def epoch(self) -> int:
        return self.state.start


def shared_param(params: list[dict[str, Any]], name: str, default: Any) -> Any:
    """A structural training param (batch size, optimizer): the members' common value, or ValueError."""
    values = {json.dumps(p.get(name, default), default=str) for p in params}
    if len(values) > 1:
        raise ValueError(f"{name!r} differs inside a fused group ({sorted(values)}): group trials by it")
    return params[0].get(name, default)


def member_seed(i: int, params: Mapping[str, Any], trial: Trial | None, seed: int | Sequence[int] | None) -> int:
    """params["seed"], else seed[i], else fit's rule for a trial, else seed + i (random when seed is None)."""
    if "seed" in params:
        return int(params["seed"])
    if isinstance(seed, Sequence):
        return int(seed[i])
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    return trial_seed(seed, trial) if trial is not None else seed + i


def take_rows(t: torch.Tensor, rows: torch.Tensor | None, sl: slice, k: int) -> torch.Tensor:
    """(K, b, ...) slice of a member-shared tensor, or of per-member rows of it."""
    if rows is None:
        part = t[sl]
        return part.unsqueeze(0).expand(k, *part.shape)
    return t[rows[:, sl]]


def positions(active: list[FusedMember]) -> list[int]:
    """Where the active members sit in the group (their rows of per-member data)."""
    return [m.pos for m in active]


def stopping(active: list[FusedMember], mid_epoch: bool) -> list[int]:
    """Positions of members whose trial says stop. Between batches only a user stop can arrive (a prune is
    decided at a report), and it reaches every trial of the study: one probe, the rest only when it fires."""
    with_trial = [i for i, m in enumerate(active) if m.trial is not None]
    if not with_trial:
        return []
    if mid_epoch and not active[with_trial[0]].trial.should_stop():  # type: ignore[union-attr]
        return []
    return [i for i in with_trial if active[i].trial.should_stop()]  # type: ignore[union-attr]


class BestWeights:
    """Each member's best-epoch parameters and buffers, kept on the device beside the fused tensors.

    An improving member's slice is copied with one ``torch.where`` per tensor, whatever K is; nothing goes to
    the CPU until a member finishes or a checkpoint needs it. (Copying every improving member to the host each
    epoch cost ~0.15 s an epoch at K=256, more than the training itself on a GPU.)"""

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []
        self.buffers: list[torch.Tensor] = []

    def update(self, net: FusedNet, improved: Sequence[bool]) -> None:
        if not any(improved):
            return
        with torch.no_grad():
            if not self.params or all(improved):
                self.params = [p.detach().clone() for p in net.params]
                self.buffers = [b.clone() for b in net.buffers]
                return
            mask = torch.tensor(list(improved), device=net.device)
            for dst, src in zip([*self.params, *self.buffers], [*net.params, *net.buffers], strict=True):
                dst.copy_(torch.where(mask.view(-1, *([1] * (src.dim() - 1))), src.detach(), dst))

    def select(self, keep: Sequence[int]) -> None:
        if self.params:
            idx = torch.tensor(list(keep), dtype=torch.long, device=self.params[0].device)
            self.params = [t.index_select(0, idx) for t in self.params]
            self.buffers = [t.index_select(0, idx) for t in self.buffers]

    def host(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [t.cpu() for t in self.params], [t.cpu() for t in self.buffers]


def finish(members: Sequence[tuple[int, FusedMember]], net: FusedNet, best: BestWeights, metric: str, mode: str,
           task: str) -> None:
    """Members leaving the group: their best weights to the CPU (one transfer per tensor) and ``best.pt``."""
    fresh = [(pos, m) for pos, m in members if m.device_best]
    host = best.host() if fresh else None
    for pos, m in fresh:
        net.export(host, pos, m.ref)  # type: ignore[arg-type]
        m.state.best_weights = cpu_state(m.ref)
        m.device_best = False
    for _, m in members:
        st = m.state
        if m.folder is not None and st.best_weights is not None and st.best_epoch is not None:
            save_best(m.folder, st.best_weights, st.best_epoch, st.best_metrics, metric, mode, task,
                      getattr(m.ref, "nbautoml_arch", None))


def epoch_end(active: list[FusedMember], vals: list[dict[str, float]], train_losses: list[float],
               shared: dict[str, float], net: FusedNet, fopt: FusedOptimizer, best: BestWeights, metric: str,
               mode: str, task: str, epochs: int, early_stopping: int | None, checkpoint_every: int | None,
               verbose: bool) -> list[int]:
    """Each member's report, best epoch, checkpoint.pt and stop decision; returns who is done (already
    :func:`finish`-ed: best weights on the CPU, ``best.pt`` written)."""
    metrics_of: list[dict[str, float]] = []
    improved: list[bool] = []
    for pos, m in enumerate(active):
        st = m.state
        metrics = {"val_loss": vals[pos]["val_loss"], "train_loss": train_losses[pos], **shared,
                   **{k: v for k, v in vals[pos].items() if k != "val_loss"}}
        metrics_of.append(metrics)
        st.history.append({"epoch": m.epoch, **metrics})
        is_best = st.best_epoch is None or better(metrics[metric], st.best_metrics.get(metric), mode)
        improved.append(is_best)
        if is_best:
            st.best_epoch, st.best_metrics = m.epoch, {**metrics, "epoch": m.epoch}
            m.device_best = True
    best.update(net, improved)
    host: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
    best_host: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
    opt_host: Any = None
    done: list[int] = []
    for pos, m in enumerate(active):
        epoch, st, metrics = m.epoch, m.state, metrics_of[pos]
        m.sched.epoch_end(epoch, metrics[metric])
        due = m.folder is not None and checkpoint_every is not None and (
            (epoch + 1) % checkpoint_every == 0 or epoch == epochs - 1)
        if due and m.folder is not None:
            host = host if host is not None else net.host_copy()
            net.export(host, pos, m.ref)
            model_state = cpu_state(m.ref)
            if m.device_best and st.best_epoch != epoch:
                best_host = best_host if best_host is not None else best.host()
                net.export(best_host, pos, m.ref)
                st.best_weights, m.device_best = cpu_state(m.ref), False
            elif m.device_best:
                st.best_weights, m.device_best = model_state, False
            opt_host = opt_host if opt_host is not None else fopt.host_state()
            fopt.export(opt_host, pos, m.opt, net.layout)
            rng_state = m.gen.get_state() if m.gen is not None and m.gen.device.type == "cpu" \
                else torch.get_rng_state()
            save_checkpoint(m.folder, st, epoch, model_state, m.opt.state_dict(), m.sched.state_dict(),
                            {"torch": rng_state, "cuda": [], "shuffle": m.shuffle.get_state()}, m.split_seed)
        trial = m.trial
        if trial is not None and (trial.last_step is None or epoch > trial.last_step):
            trial.report(epoch, **metrics)  # a retried group (after OOM) skips the steps already reported
        if verbose:
            print(f"member {m.pos} epoch {epoch + 1}/{epochs}  {metric} {metrics[metric]:.4g}", flush=True)
        st.start = epoch + 1
        if not math.isfinite(metrics["train_loss"]):
            st.stopped = "diverged"
        elif trial is not None and trial.should_stop():
            st.stopped = "pruned" if trial.pruned else "stopped"
        elif early_stopping is not None and st.best_epoch is not None and epoch - st.best_epoch >= early_stopping:
            st.stopped = "early_stopping"
        if st.stopped or st.start >= epochs:
            done.append(pos)
    finish([(pos, active[pos]) for pos in done], net, best, metric, mode, task)
    return done
