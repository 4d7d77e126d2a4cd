"""LoRA from scratch: a low-rank update beside a frozen linear layer, injected as a module swap.

Low-Rank Adaptation (Hu et al. 2021, arXiv:2106.09685) freezes a pretrained weight
``W0 (out, in)`` and learns its change as a product of two thin matrices:

    h = W0 x + (alpha / r) * B A dropout(x),    A: (r, in), B: (out, r), r << min(in, out)

``A`` starts random (Kaiming-uniform, as the paper's reference code) and ``B`` at zero, so the
adapted model starts as the base model exactly. Only ``A`` and ``B`` train: ``r (in + out)``
numbers per adapted matrix instead of ``in * out``. ``alpha / r`` keeps the size of the update
roughly the same when ``r`` changes, so a learning rate tuned at one rank transfers.

After training the update can be **merged** into the weight, ``W = W0 + (alpha / r) B A``: one
matmul, no extra latency; **unmerging** subtracts it again. The adapter alone (``A``, ``B`` of
every adapted layer and the settings) is a small file (:func:`save_adapter`); loading it into a
fresh copy of the base model (:func:`load_adapter`) gives the same outputs.

Worked example (tested): ``W0 = [[1, 0], [0, 1]]``, ``A = [[1, 2]]`` (r = 1), ``B = [[1], [0]]``,
``alpha = 2`` (scaling 2): ``B A = [[1, 2], [0, 0]]`` so ``W = [[3, 4], [0, 1]]``; on ``x = [1,
1]`` the layer gives ``[1, 1] + 2 * [3, 0] = [7, 1]``, merged or not.

:class:`LoRALinear` wraps the frozen ``nn.Linear`` (the variant is a part, docs/CONVENTIONS.md,
convention 4): :func:`inject_lora` swaps it in for the chosen layers of any model. Parameter names
follow ``base.weight``, ``lora_A``, ``lora_B``.

Dimension legend: in / out the wrapped layer's features, r the rank, ``...`` any leading dims.

Left out: rank-stabilised scaling (rsLoRA), DoRA, LoRA on embeddings or convolutions, several
adapters on one layer at once, and quantised base weights (QLoRA).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ADAPTER_FORMAT",
    "ADAPTER_VERSION",
    "AdapterFileError",
    "LoRAConfig",
    "LoRALinear",
    "count_parameters",
    "inject_lora",
    "load_adapter",
    "lora_state_dict",
    "mark_only_trainable",
    "merge_lora",
    "save_adapter",
    "unload_lora",
    "unmerge_lora",
]

ADAPTER_FORMAT = "nlpcurriculum.lora_adapter"
ADAPTER_VERSION = 1


class AdapterFileError(ValueError):
    """An adapter file that is not ours, of another version, or for other layers."""


@dataclass
class LoRAConfig:
    """Where and how big the low-rank updates are.

    Attributes:
        targets: layer names to adapt: a module is adapted when its dotted name equals an entry
            or ends with ``"." + entry`` (``"qkv"`` adapts every block's fused Q/K/V projection).
        r: the rank.
        alpha: the update is scaled by ``alpha / r``.
        dropout: dropout on the LoRA branch's input (training only).
    """

    targets: tuple[str, ...] = ("qkv",)
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        if not self.targets:
            raise ValueError("LoRA needs at least one target layer name")
        if self.r < 1:
            raise ValueError(f"r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``(alpha / r) B A``.

    Args:
        base: the pretrained layer (kept as ``self.base``; its parameters are frozen here).
        r: the rank.
        alpha: the scaling numerator.
        dropout: dropout on the input of the low-rank branch.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        self.base, self.r, self.alpha = base, r, float(alpha)
        self.scaling = self.alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init, as the paper
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """``(alpha / r) B A``, ``(out, in)``: what merging adds to the weight."""
        return (self.lora_B @ self.lora_A) * self.scaling  # (out, r) @ (r, in)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``: ``W0 x + b + (alpha / r) B A dropout(x)``."""
        y = self.base(x)
        if self.merged:
            return y  # the update already sits inside base.weight
        h = F.linear(self.drop(x), self.lora_A)  # (..., r)
        return y + F.linear(h, self.lora_B) * self.scaling  # (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the frozen weight (no-op when already merged)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update from the weight again (no-op when not merged)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def _matches(name: str, targets: tuple[str, ...]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def inject_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Swap a :class:`LoRALinear` in for every ``nn.Linear`` of ``model`` that ``cfg`` targets.

    The model is changed in place; nothing else is frozen here (see :func:`mark_only_trainable`).

    Args:
        model: any module tree.
        cfg: targets, rank, alpha, dropout.

    Returns:
        The dotted names of the adapted layers, in module order.

    Raises:
        ValueError: no ``nn.Linear`` matches the targets (a typo would otherwise adapt nothing).
    """
    names = [n for n, m in model.named_modules()
             if n and isinstance(m, nn.Linear) and _matches(n, cfg.targets)]
    if not names:
        raise ValueError(f"no nn.Linear of the model matches the LoRA targets {cfg.targets}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), cfg.r, cfg.alpha, cfg.dropout))
    return names


def _lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer's update into its weight."""
    for layer in _lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo :func:`merge_lora`."""
    for layer in _lora_layers(model).values():
        layer.unmerge()


def unload_lora(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace every :class:`LoRALinear` by its (merged, unless ``merge=False``) plain layer.

    The counterpart of peft's ``merge_and_unload``: afterwards the model has the base model's
    structure and state-dict keys again. The unwrapped layers' parameters are made trainable
    again (as they were before injection). Returns ``model`` (changed in place).
    """
    for name, layer in _lora_layers(model).items():
        if merge:
            layer.merge()
        elif layer.merged:
            layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        for p in layer.base.parameters():
            p.requires_grad_(True)
        setattr(parent, child, layer.base)
    return model


def mark_only_trainable(model: nn.Module, keep: tuple[str, ...] = ("lora_",)) -> int:
    """Freeze every parameter whose name contains none of ``keep``; return the trainable count."""
    for name, p in model.named_parameters():
        p.requires_grad_(any(k in name for k in keep))
    return count_parameters(model, trainable_only=True)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (a tensor shared by two modules counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``{dotted name: tensor}`` of every ``lora_A`` / ``lora_B``, detached copies."""
    return {n: p.detach().clone() for n, p in model.named_parameters()
            if n.endswith(".lora_A") or n.endswith(".lora_B")}


def save_adapter(model: nn.Module, cfg: LoRAConfig, file: str | os.PathLike | IO[bytes]) -> int:
    """Write the adapter alone: ``A``, ``B`` of every LoRA layer, the config, the format header.

    A path also gets a JSON sidecar ``<path>.json`` (format, version, config, layer shapes) that
    a person can read. Merged layers are saved as their unmerged factors (the factors are what
    the adapter is).

    Returns:
        The size of the adapter file in bytes.
    """
    state = lora_state_dict(model)
    if not state:
        raise ValueError("the model has no LoRA layers to save")
    header = {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, "config": asdict(cfg),
              "layers": sorted({n.rsplit(".", 1)[0] for n in state})}
    buffer = io.BytesIO()
    torch.save({**header, "state": state}, buffer)
    data = buffer.getvalue()
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        from nlpcurriculum.io import atomic_path, write_json

        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        shapes = {n: list(t.shape) for n, t in state.items()}
        write_json(str(path) + ".json", {**header, "file": path.name, "shapes": shapes})
    else:
        file.write(data)
    return len(data)


def load_adapter(model: nn.Module, file: str | os.PathLike | IO[bytes]) -> LoRAConfig:
    """Inject the saved adapter's LoRA layers into a fresh base ``model`` and load its factors.

    Raises:
        AdapterFileError: not an adapter file of this format and version, or its layers are not
            the ones its config adapts in ``model``.
    """
    where = str(file) if isinstance(file, (str, os.PathLike)) else "adapter stream"
    try:
        payload: dict[str, Any] = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file
        raise AdapterFileError(f"{where}: not a readable adapter file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != ADAPTER_FORMAT:
        raise AdapterFileError(f"{where}: not an {ADAPTER_FORMAT} file")
    if payload.get("version") != ADAPTER_VERSION:
        raise AdapterFileError(f"{where}: adapter version {payload.get('version')}, "
                               f"this code reads {ADAPTER_VERSION}")
    cfg = LoRAConfig(**payload["config"])
    names = inject_lora(model, cfg)
    if sorted(names) != payload["layers"]:
        raise AdapterFileError(f"{where}: adapts {payload['layers']}, the model has {names}")
    missing = model.load_state_dict(payload["state"], strict=False)
    if missing.unexpected_keys:
        raise AdapterFileError(f"{where}: unexpected tensors {missing.unexpected_keys}")
    return cfg

