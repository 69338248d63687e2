"""Local training and evaluation of a torch model on a party's own data, on a chosen device.

Data comes as ``(x, y)`` tensors or arrays, a ``Dataset`` or a ``DataLoader``
(``batches``). Tensors take a fast path (one random permutation per epoch, slices of the
whole tensor); anything else goes through a ``DataLoader``. ``resolve_device`` maps
``"cpu" | "cuda" | "auto"`` to a torch device; in simulation, where every party is a thread of
one process, ``"cuda"``/``"auto"`` spread the parties round-robin over the visible GPUs by their
index in the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedcore.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")
Optimizer = Callable[[Any], torch.optim.Optimizer]
LossFn = Callable[..., torch.Tensor]
"""``loss(output, target)``; evaluation also passes ``reduction="sum"``, as torch's losses take."""


def resolve_device(device: str | torch.device, index: int = 0) -> torch.device:
    """``cpu``; ``cuda`` (GPU ``index % count``, an error without one); ``auto`` (cuda if any)."""
    if isinstance(device, torch.device):
        return device
    name = str(device)
    if name.startswith("cuda:"):
        return torch.device(name)
    if name not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES} (or cuda:N), got {device!r}")
    count = torch.cuda.device_count() if name != "cpu" else 0
    if name == "cuda" and count == 0:
        raise ConfigError("device='cuda' but torch sees no GPU here; use device='auto' or 'cpu'")
    return torch.device(f"cuda:{index % count}") if count else torch.device("cpu")


@dataclass
class Batches:
    """A party's data as minibatches: tensors sliced directly, or a DataLoader."""

    tensors: tuple[torch.Tensor, torch.Tensor] | None
    loader: DataLoader[Any] | None
    batch_size: int

    def __len__(self) -> int:
        if self.tensors is not None:
            return len(self.tensors[1])
        return len(self.loader.dataset)  # type: ignore[arg-type, union-attr]

    def epoch(self, generator: torch.Generator | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass: shuffled when ``generator`` is given (tensor path), in order otherwise."""
        if self.tensors is None:
            yield from self.loader  # type: ignore[misc]
            return
        x, y = self.tensors
        n = len(y)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield x[idx], y[idx]


def batches(data: Any, batch_size: int, shuffle: bool = True) -> Batches:
    """Wrap ``(x, y)`` (tensors or arrays), a ``Dataset`` or a ``DataLoader``."""
    if isinstance(data, DataLoader):
        return Batches(None, data, data.batch_size or batch_size)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(v) for v in data)
        if x.dtype == torch.float64:
            x = x.float()  # torch models default to float32; numpy gives float64
        if len(x) != len(y):
            raise ConfigError(f"features and labels differ in length: {len(x)} and {len(y)}")
        return Batches((x, y), None, batch_size)
    if isinstance(data, Dataset):
        return Batches(None, DataLoader(data, batch_size=batch_size, shuffle=shuffle), batch_size)
    raise ConfigError(
        f"data must be (x, y) tensors or arrays, a torch Dataset or a DataLoader, got {type(data).__name__}"
    )


@dataclass(frozen=True)
class FitResult:
    """What local training did: samples seen per epoch, steps taken, mean training loss."""

    samples: int
    steps: int
    loss: float


def fit_local(
    model: nn.Module,
    data: Batches,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    epochs: int,
    device: torch.device,
    mu: float = 0.0,
    seed: int = 0,
) -> FitResult:
    """Train ``model`` (already on ``device``) in place; FedProx's term when ``mu > 0``."""
    anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else []
    generator = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
    model.train()
    steps, total = 0, 0.0
    for _ in range(epochs):
        for xb, yb in data.epoch(generator):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            total += float(loss.detach())
            if mu > 0:
                prox = sum(torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), anchor, strict=True))
                loss = loss + 0.5 * mu * prox
            torch.autograd.backward(loss)
            optimizer.step()
            steps += 1
    return FitResult(len(data), steps, total / max(steps, 1))


@torch.no_grad()
def score(model: nn.Module, data: Batches, loss_fn: LossFn, device: torch.device) -> dict[str, float]:
    """Mean loss, and accuracy for class-index targets: ``{"loss", "accuracy"}``."""
    model.eval()
    n, loss_sum, correct, classify = 0, 0.0, 0, True
    for xb, yb in data.epoch(None):
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        loss_sum += float(loss_fn(out, yb)) * len(yb)
        n += len(yb)
        classify = classify and out.dim() == 2 and not yb.is_floating_point()
        if classify:
            correct += int((out.argmax(dim=1) == yb).sum())
    if n == 0:
        return {"loss": float("nan"), "accuracy": float("nan")}
    metrics = {"loss": loss_sum / n}
    if classify:
        metrics["accuracy"] = correct / n
    return metrics
