"""The training loop every trainer shares: AdamW, warm-up + cosine schedule, weight EMA,
resumable checkpoints (kept outside the repository), a rich progress bar and a log file."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from crct_cli.errors import CrctError

M = TypeVar("M", bound=nn.Module)
B = TypeVar("B")  # a batch, as its maker builds it and the loss function takes it


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
    device: str = "cpu"  # where the steps run; the returned EMA is always on the CPU
    minutes: float | None = None  # fit ``steps`` to this much time (see ``fit_steps``)
    #: the run a checkpoint belongs to (its command but the steps): another run's is refused
    identity: str | None = None


class EMA(Generic[M]):
    """Exponential moving average of the weights: steadier than the last step for short runs."""

    def __init__(self, model: M, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        ours, theirs = [], []
        for ema_v, v in zip(
            self.model.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_v.is_floating_point():
                ours.append(ema_v)
                theirs.append(v.detach())
            else:
                ema_v.copy_(v)
        # the same arithmetic as a loop over the tensors, in a few kernels on a GPU
        torch._foreach_mul_(ours, d)
        torch._foreach_add_(ours, theirs, alpha=1 - d)


def lr_at(step: int, cfg: LoopConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


#: ``fit_steps`` times the steps between these two, after the workers have started
PROBE = (20, 100)


def fit_steps(cfg: LoopConfig, seconds_per_step: float, elapsed: float) -> int:
    """The steps that end the run within ``cfg.minutes``, at most ``cfg.steps``.

    Called once, at step ``PROBE[1]`` (inside the warm-up, whose learning rates do not depend
    on the total): the cosine schedule is then laid over the steps that fit, and the command
    recorded with the weights names them, so it reproduces the run without a clock."""
    assert cfg.minutes is not None
    left = cfg.minutes * 60 - elapsed
    fit = PROBE[1] + int(0.97 * left / max(seconds_per_step, 1e-9))
    return max(PROBE[1], min(cfg.steps, fit))


def run_loop(
    model: M,
    batches: Callable[[int], Iterator[tuple[int, B]]],
    loss_fn: Callable[[M, B, int], tuple[torch.Tensor, dict[str, float]]],
    cfg: LoopConfig,
    log: Callable[[str], None] = print,
    param_groups: list[dict] | None = None,
) -> EMA[M]:
    """Train ``model`` for ``cfg.steps`` steps; resumes from ``cfg.checkpoint`` if present.

    ``batches(start_step)`` yields (step, batch); ``loss_fn(model, batch, step)`` returns the loss
    and numbers to log; a batch of tensors (or a tuple of them) reaches it on ``cfg.device``.
    Returns the EMA of the weights (what gets shipped), on the CPU.
    """
    # tiny weights and Adam moments become denormal floats late in training, which slows CPU
    # arithmetic several-fold; flushing them to zero changes nothing measurable
    torch.set_flush_denormal(True)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: pick the fastest kernels once
    model.to(device)
    params: list[dict[str, Any]] = (
        param_groups if param_groups is not None else [{"params": model.parameters()}]
    )
    for g in params:
        g.setdefault("lr_scale", 1.0)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay)
    start = 0
    if cfg.resume and cfg.checkpoint is not None and cfg.checkpoint.is_file():
        start = _resume(cfg, model, ema, opt, device)
        log(f"resumed from {cfg.checkpoint} at step {start}")
    elif cfg.resume:
        log(f"no checkpoint at {cfg.checkpoint}: starting from step 0")
    model.train()
    running: dict[str, float] = {}
    t0 = time.time()
    probe_start = t0
    if cfg.minutes is not None and (start > PROBE[0] or cfg.warmup < PROBE[1]):
        raise ValueError("minutes: needs a fresh run and a warm-up of at least 100 steps")
    if cfg.minutes is not None and cfg.steps <= PROBE[1]:
        log(f"{cfg.steps} steps end before the first {PROBE[1]} are timed: --minutes is not used")
    with Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # beside the log lines, not in a redirected stdout
    ) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=start, info="")
        for step, batch in batches(start):
            if step >= cfg.steps:
                break
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_scale"]
            moved = cast(B, to_device(batch, device))  # the same structure, on the device
            loss, info = loss_fn(model, moved, step)
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
            if cfg.minutes is not None and step + 1 in PROBE:
                if step + 1 == PROBE[0]:
                    probe_start = time.time()
                else:
                    per_step = (time.time() - probe_start) / (PROBE[1] - PROBE[0])
                    cfg.steps = fit_steps(cfg, per_step, time.time() - t0)
                    progress.update(task, total=cfg.steps)
                    log(f"{cfg.minutes:g} minutes fit {cfg.steps} steps ({per_step:.3f} s each)")
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
                        "identity": cfg.identity,
                        # dropout's masks after a resume as without one
                        "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all()
                        if device.type == "cuda"
                        else None,
                    },
                    tmp,
                )
                tmp.replace(cfg.checkpoint)
    model.eval()
    ema.model.cpu()
    return ema


def _resume(
    cfg: LoopConfig, model: M, ema: EMA[M], opt: torch.optim.Optimizer, device: torch.device
) -> int:
    """Load ``cfg.checkpoint`` into the model, its EMA, the optimiser and torch's random state;
    the step to go on from. A file that is no checkpoint, or another run's (other data,
    options, seed or output), is one error: resuming it would train that run on."""
    path = cfg.checkpoint
    assert path is not None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        recorded = state.get("identity")
        if recorded is not None and cfg.identity is not None and recorded != cfg.identity:
            raise CrctError(
                f"{path}: the checkpoint of another run ({recorded}); remove it, or give this "
                "run its own --checkpoint"
            )
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        if state.get("rng") is not None:
            torch.set_rng_state(state["rng"].cpu())
        if state.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["step"])
    except CrctError:
        raise
    except Exception as exc:  # torch raises many types for a file that is not one
        raise CrctError(
            f"{path}: cannot resume from it: not a crct train checkpoint of this model and "
            f"its options ({type(exc).__name__})"
        ) from None


def to_device(batch: object, device: torch.device) -> object:
    """The tensors of a batch (a tensor, or tuples and lists holding them) on ``device``;
    anything else, and a batch with nothing to move, is given back as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        moved = [to_device(b, device) for b in batch]
        if all(m is b for m, b in zip(moved, batch, strict=True)):
            return batch
        if hasattr(batch, "_fields"):  # a named tuple
            named: Any = type(batch)  # takes its fields one by one
            return named(*moved)
        return type(batch)(moved)
    return batch


def prefetch(
    make: Callable[[int], B], start: int, stop: int, depth: int = 3
) -> Iterator[tuple[int, B]]:
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
            yield item
    finally:
        stop_flag.set()


def _quiet_worker() -> None:
    """A batch-building process: one OpenCV and torch thread (the processes are the
    parallelism), and Ctrl-C left to the parent, which ends the pool."""
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def prefetch_processes(
    make: Callable[[int], B], start: int, stop: int, workers: int, depth: int = 0
) -> Iterator[tuple[int, B]]:
    """:func:`prefetch` with the batches built in ``workers`` processes, yielded in step order.

    For a GPU, which one thread cannot feed. ``make`` must pickle (it is sent to each process
    once per batch, so it should load its faces lazily, once per process); each batch depends
    only on its step, so the batches are those one thread would build. Processes are spawned,
    not forked: OpenCV's thread pool deadlocks in forked children. At most ``depth`` (default
    twice ``workers``) batches are built ahead.
    """
    import multiprocessing
    from collections import deque

    depth = depth or 2 * workers
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_quiet_worker) as pool:
        pending: deque = deque()
        step = start
        while step < stop or pending:
            while step < stop and len(pending) < depth:
                pending.append((step, pool.apply_async(make, (step,))))
                step += 1
            done, result = pending.popleft()
            yield done, result.get()
