"""The training loop every trainer shares: AdamW, warm-up + cosine schedule, weight EMA,
resumable checkpoints (kept outside the repository), a rich progress bar and a log file."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn


@dataclass
class LoopConfig:
    steps: int
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    ema_decay: float = 0.998
    checkpoint: Path | None = None
    checkpoint_every: int = 100
    log_every: int = 25
    clip_grad: float = 5.0
    resume: bool = False


class EMA:
    """Exponential moving average of the weights: steadier than the last step for short runs."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for ema_v, v in zip(
            self.model.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_v.is_floating_point():
                ema_v.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                ema_v.copy_(v)


def lr_at(step: int, cfg: LoopConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def run_loop(
    model: nn.Module,
    batches: Callable[[int], Iterator[tuple[int, object]]],
    loss_fn: Callable[[nn.Module, object, int], tuple[torch.Tensor, dict[str, float]]],
    cfg: LoopConfig,
    log: Callable[[str], None] = print,
    param_groups: list[dict] | None = None,
) -> EMA:
    """Train ``model`` for ``cfg.steps`` steps; resumes from ``cfg.checkpoint`` if present.

    ``batches(start_step)`` yields (step, batch); ``loss_fn(model, batch, step)`` returns the loss
    and numbers to log. Returns the EMA of the weights (what gets shipped).
    """
    # tiny weights and Adam moments become denormal floats late in training, which slows CPU
    # arithmetic several-fold; flushing them to zero changes nothing measurable
    torch.set_flush_denormal(True)
    params = param_groups if param_groups is not None else [{"params": model.parameters()}]
    for g in params:
        g.setdefault("lr_scale", 1.0)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay)
    start = 0
    if cfg.resume and cfg.checkpoint is not None and cfg.checkpoint.is_file():
        state = torch.load(cfg.checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
        log(f"resumed from {cfg.checkpoint} at step {start}")
    model.train()
    running: dict[str, float] = {}
    t0 = time.time()
    with Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=start, info="")
        for step, batch in batches(start):
            if step >= cfg.steps:
                break
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            loss, info = loss_fn(model, batch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            opt.step()
            ema.update(model, step)
            for k, v in info.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            text = " ".join(f"{k}={v:.4f}" for k, v in running.items())
            progress.update(task, completed=step + 1, info=text)
            if (step + 1) % cfg.log_every == 0:
                rate = (step + 1 - start) / max(1e-6, time.time() - t0)
                log(f"step {step + 1}/{cfg.steps} lr={lr:.2e} {text} ({rate:.2f} steps/s)")
            if cfg.checkpoint is not None and (
                (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps
            ):
                cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                tmp = cfg.checkpoint.with_suffix(".tmp")
                torch.save(
                    {
                        "model": model.state_dict(),
                        "ema": ema.model.state_dict(),
                        "opt": opt.state_dict(),
                        "step": step + 1,
                    },
                    tmp,
                )
                tmp.replace(cfg.checkpoint)
    model.eval()
    return ema


def prefetch(
    make: Callable[[int], object], start: int, stop: int, depth: int = 3
) -> Iterator[tuple[int, object]]:
    """Yield (step, make(step)) for step in [start, stop), built ahead in a background thread.

    A thread rather than DataLoader workers: OpenCV's thread pool deadlocks in forked children,
    and warping/degrading release the GIL, so a thread overlaps well with the training step.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop_flag = threading.Event()

    def work() -> None:
        for step in range(start, stop):
            if stop_flag.is_set():
                return
            try:
                item: object = (step, make(step))
            except BaseException as exc:  # hand the error to the consumer
                q.put(exc)
                return
            q.put(item)
        q.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop_flag.set()
