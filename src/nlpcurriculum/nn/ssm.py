"""A selective state-space layer (Mamba's S6) from scratch: a parallel scan to train, a recurrence to generate.

A linear state-space model carries a state ``h`` (``N`` numbers per channel) through time::

    h_t = A_bar h_{t-1} + B_bar x_t        y_t = C h_t + D x_t

With fixed ``A, B, C`` (S4, Gu et al. 2021, arXiv:2111.00396) the layer is a convolution and
cannot choose what to remember. Mamba (Gu & Dao 2023, arXiv:2312.00752) makes it *selective*:
the step size ``delta``, ``B`` and ``C`` are functions of the input at each position, so a token
can be written into the state (large ``delta``) or ignored (``delta`` near 0, ``A_bar`` near 1).
Per channel ``c`` and state dimension ``n``:

* ``delta_t = softplus(W_dt (W_x x_t)_dt + b_dt)``  -- a low-rank projection, ``dt_rank`` wide,
* ``B_t, C_t = (W_x x_t)_B, (W_x x_t)_C``            -- shared across channels, ``N`` wide,
* zero-order hold discretisation of the continuous ``A = -exp(A_log)`` (negative: a decaying
  state): ``A_bar = exp(delta_t A)``, and ``B_bar x_t = delta_t B_t x_t`` (the first-order
  simplification of ZOH's ``(delta A)^-1 (exp(delta A) - I) delta B`` that Mamba uses for B).

**Two ways to compute the same thing.** The recurrence is a first-order linear one,
``h_t = a_t h_{t-1} + b_t`` with ``a_t = A_bar_t``, ``b_t = B_bar_t x_t``. Pairs ``(a, b)`` compose
associatively, ``(a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2)``, so all prefixes can be computed
in ``log2 L`` steps (a parallel scan; :func:`parallel_scan` is the Hillis-Steele form: at step
``k`` every position combines with the one ``2^k`` before it). That is how the layer trains.
Generating, it runs the recurrence one token at a time (:meth:`SelectiveSSM.step`), holding only
``h`` (``ED x N``) and the last ``d_conv - 1`` inputs of the causal convolution: memory does not
grow with the sequence, unlike an attention KV cache.

The block around the scan (as in the Mamba paper, Figure 3): ``in_proj`` to ``2 ED`` channels (the
``x`` branch and a gate ``z``), a depthwise causal 1-D convolution and SiLU on ``x``, the scan,
``y * silu(z)``, and ``out_proj`` back to ``D``. Parameter names match ``mambapy``'s
``MambaBlock``, so the same weights load into both and the outputs can be compared.

Left out: the hardware-aware fused scan kernel, complex ``A``, and inner layer norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SSMConfig", "SelectiveSSM", "parallel_scan", "sequential_scan"]


@dataclass
class SSMConfig:
    """Sizes of a :class:`SelectiveSSM`.

    Attributes:
        d_model: width ``D`` of the residual stream.
        d_state: state size ``N`` per channel.
        expand: inner width ``ED = expand * D``.
        d_conv: width of the causal depthwise convolution.
        dt_rank: rank of ``delta``'s projection; 0 means ``ceil(D / 16)``.
        dt_min, dt_max: range of the initial step sizes (log-uniform).
        selective: ``delta``, ``B`` and ``C`` depend on the input (Mamba's S6). ``False`` is the
            ablation the paper measures against: one learned ``delta`` per channel and one
            ``B``, ``C`` for every position (a linear time-invariant SSM, S4-like), which cannot
            choose what to remember.
    """

    d_model: int = 64
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    dt_rank: int = 0
    dt_min: float = 0.001
    dt_max: float = 0.1
    selective: bool = True

    def __post_init__(self) -> None:
        if min(self.d_model, self.d_state, self.expand, self.d_conv) < 1:
            raise ValueError(f"SSM sizes must be >= 1, got {self}")
        if self.dt_rank == 0:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model


def parallel_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All prefixes of ``h_t = a_t h_{t-1} + b_t`` (``h_{-1} = 0``) over dim 1, in ``ceil(log2 L)`` steps.

    Args:
        a, b: ``(B, L, ...)`` decay factors and inputs.

    Returns:
        ``(B, L, ...)`` states ``h``. After step ``k``, position ``t`` holds the composition of
        positions ``t - 2^(k+1) + 1 .. t``; the prefix is complete once ``2^k >= L``.
    """
    L = a.shape[1]
    offset = 1
    while offset < L:
        # combine position t with position t - offset: (a_prev, b_prev) then (a, b)
        b = torch.cat([b[:, :offset], a[:, offset:] * b[:, :-offset] + b[:, offset:]], dim=1)
        a = torch.cat([a[:, :offset], a[:, offset:] * a[:, :-offset]], dim=1)
        offset *= 2
    return b


def sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence one step at a time: the reference :func:`parallel_scan` must equal."""
    h = torch.zeros_like(b[:, 0])
    states = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


class SelectiveSSM(nn.Module):
    """The Mamba mixer: ``(B, L, D) -> (B, L, D)``, with :meth:`step` for one token at a time."""

    def __init__(self, cfg: SSMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ed, n = cfg.d_inner, cfg.d_state
        self.in_proj = nn.Linear(cfg.d_model, 2 * ed, bias=False)
        self.conv1d = nn.Conv1d(ed, ed, kernel_size=cfg.d_conv, groups=ed, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(ed, cfg.dt_rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(cfg.dt_rank, ed, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(ed, 1))  # (ED, N): S4D-real init
        self.D = nn.Parameter(torch.ones(ed))
        self.out_proj = nn.Linear(ed, cfg.d_model, bias=False)
        if not cfg.selective:  # the time-invariant ablation: B and C are parameters, not projections
            self.x_proj = None
            self.B = nn.Parameter(torch.randn(n) / math.sqrt(n))
            self.C = nn.Parameter(torch.randn(n) / math.sqrt(n))
        with torch.no_grad():  # initial step sizes log-uniform in [dt_min, dt_max]: bias = softplus^-1(dt)
            dt = torch.exp(torch.rand(ed) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _selection(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``delta (.., ED)``, ``B (.., N)``, ``C (.., N)`` from the convolved inputs ``x (.., ED)``."""
        r, n = self.cfg.dt_rank, self.cfg.d_state
        if not self.cfg.selective:  # the same delta, B, C at every position
            lead = x.shape[:-1]
            return (F.softplus(self.dt_proj.bias).expand(*lead, -1), self.B.expand(*lead, n),
                    self.C.expand(*lead, n))
        dt, B, C = torch.split(self.x_proj(x), [r, n, n], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(self, u: torch.Tensor, scan=parallel_scan) -> torch.Tensor:
        L = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)                          # (B, L, ED) each
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))  # causal: drop the right pad
        delta, B, C = self._selection(x)                                  # (B, L, ED), (B, L, N), (B, L, N)
        A = -torch.exp(self.A_log)                                        # (ED, N)
        a = torch.exp(delta.unsqueeze(-1) * A)                            # (B, L, ED, N): A_bar
        b = delta.unsqueeze(-1) * B.unsqueeze(2) * x.unsqueeze(-1)        # (B, L, ED, N): B_bar x
        h = scan(a, b)                                                    # (B, L, ED, N)
        y = (h @ C.unsqueeze(-1)).squeeze(-1) + self.D * x                # (B, L, ED)
        return self.out_proj(y * F.silu(z))

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h (B, ED, N), last d_conv - 1 inputs (B, ED, d_conv - 1))``, all zeros."""
        ed = self.cfg.d_inner
        return (torch.zeros(batch, ed, self.cfg.d_state), torch.zeros(batch, ed, self.cfg.d_conv - 1))

    def step(self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        """One token ``u (B, D)`` -> ``(y (B, D), new state)``: the recurrence, constant memory."""
        h, window = state
        x, z = self.in_proj(u).chunk(2, dim=-1)                          # (B, ED)
        inputs = torch.cat([window, x.unsqueeze(-1)], dim=-1)             # (B, ED, d_conv)
        conv = (inputs * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias
        xc = F.silu(conv)
        delta, B, C = self._selection(xc)                                 # (B, ED), (B, N), (B, N)
        A = -torch.exp(self.A_log)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + delta.unsqueeze(-1) * B.unsqueeze(1) * xc.unsqueeze(-1)
        y = (h @ C.unsqueeze(-1)).squeeze(-1) + self.D * xc               # (B, ED)
        return self.out_proj(y * F.silu(z)), (h, inputs[..., 1:])
