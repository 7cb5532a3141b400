"""Per-member bookkeeping of :func:`nbautoml.torch.fused.train_fused`: seeds, stop polling, epoch ends.

Kept apart so the fused loop reads in one screen. ``_epoch_end`` does for each member what train() does after
an epoch — history, best epoch, ``best.pt``, ``checkpoint.pt`` (train()'s layout and save helpers, so either
loop resumes the other's checkpoints), the report, the stop decision — in train()'s order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nbautoml.engine.trial import Trial
from nbautoml.torch._fused_layers import FusedNet, FusedOptimizer
from nbautoml.torch._optim import LRSchedule
from nbautoml.torch.train import _FORMAT, BEST, CHECKPOINT, _atomic_save, _better, _cpu_state, _State

__all__ = ["Member", "epoch_end", "member_seed", "positions", "shared_param", "stopping", "take_rows",
           "trial_seed"]


def trial_seed(base: int, trial: Trial) -> int:
    """A trial's training seed: fit's rule for fold 0, so a fused trial equals fit's one-by-one one."""
    return base * 100003 + trial.number * 101


class Member:
    """One configuration of a fused group: its trial, reference model, optimizer format, schedule, RNGs."""

    def __init__(self, pos: int, trial: Trial | None, params: dict[str, Any], seed: int, hyper: dict[str, Any]):
        self.pos, self.trial, self.params, self.seed, self.hyper = pos, trial, params, seed, hyper
        self.split_seed = seed
        self.state = _State()
        self.ckpt: dict[str, Any] | None = None
        self.shuffle = torch.Generator()
        self.shuffle.manual_seed(seed)
        self.folder = trial.checkpoint_dir if trial is not None else None
        self.ref: torch.nn.Module
        self.opt: torch.optim.Optimizer
        self.sched: LRSchedule
        self.gen: torch.Generator | None = None

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


def positions(active: list[Member]) -> list[int]:
    """Where the active members sit in the group (their rows of per-member data)."""
    return [m.pos for m in active]


def stopping(active: list[Member], mid_epoch: bool) -> list[int]:
    """Positions of members whose trial says stop. Between batches only a user stop can arrive (a prune is
    decided at a report), and it reaches every trial of the study: one probe, the rest only when it fires."""
    with_trial = [i for i, m in enumerate(active) if m.trial is not None]
    if not with_trial:
        return []
    if mid_epoch and not active[with_trial[0]].trial.should_stop():  # type: ignore[union-attr]
        return []
    return [i for i in with_trial if active[i].trial.should_stop()]  # type: ignore[union-attr]


def epoch_end(active: list[Member], vals: list[dict[str, float]], train_losses: list[float],
               shared: dict[str, float], net: FusedNet, fopt: FusedOptimizer, metric: str, mode: str, task: str,
               epochs: int, early_stopping: int | None, checkpoint_every: int | None, verbose: bool) -> list[int]:
    """Each member's report, best epoch, best.pt / checkpoint.pt and stop decision; returns who is done."""
    host: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
    opt_host: Any = None
    done: list[int] = []
    for pos, m in enumerate(active):
        epoch, st = m.epoch, m.state
        metrics = {"val_loss": vals[pos]["val_loss"], "train_loss": train_losses[pos], **shared,
                   **{k: v for k, v in vals[pos].items() if k != "val_loss"}}
        st.history.append({"epoch": epoch, **metrics})
        improved = st.best_epoch is None or _better(metrics[metric], st.best_metrics.get(metric), mode)
        due = m.folder is not None and checkpoint_every is not None and (
            (epoch + 1) % checkpoint_every == 0 or epoch == epochs - 1)
        if improved or due:
            host = host if host is not None else net.host_copy()
            net.export(host, pos, m.ref)
        if improved:
            st.best_epoch, st.best_metrics = epoch, {**metrics, "epoch": epoch}
            st.best_weights = _cpu_state(m.ref)
            if m.folder is not None:
                _atomic_save({"model": st.best_weights, "epoch": epoch, "metrics": metrics, "metric": metric,
                              "mode": mode, "task": task, "arch": getattr(m.ref, "nbautoml_arch", None)},
                             m.folder / BEST)
        m.sched.epoch_end(epoch, metrics[metric])
        if due and m.folder is not None:
            opt_host = opt_host if opt_host is not None else fopt.host_state()
            fopt.export(opt_host, pos, m.opt, net.layout)
            rng_state = m.gen.get_state() if m.gen is not None and m.gen.device.type == "cpu" \
                else torch.get_rng_state()
            _atomic_save({"format": _FORMAT, "epoch": epoch, "model": m.ref.state_dict(),
                          "optimizer": m.opt.state_dict(), "schedule": m.sched.state_dict(),
                          "best_epoch": st.best_epoch, "best_metrics": st.best_metrics,
                          "best_model": None if st.best_epoch == epoch else st.best_weights,
                          "history": st.history, "rng": {"torch": rng_state, "cuda": [],
                                                         "shuffle": m.shuffle.get_state()},
                          "split_seed": m.split_seed}, m.folder / CHECKPOINT)
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
    return done
