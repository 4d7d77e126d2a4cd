"""Adaptation (a task layer): changing a pretrained model for a new task, or for many in turn.

* fine-tuning and instruction tuning of the base LM (loss masked to the responses);
* parameter-efficient fine-tuning written here: LoRA, prefix tuning, bottleneck adapters,
  checked against ``peft`` on the same weights;
* multi-task learning: a shared encoder with task heads, gradient balancing (PCGrad, GradNorm,
  uncertainty weighting; PCGrad checked against ``torchjd``), task sampling;
* curriculum learning: difficulty scores, orderings and pacing, domain-mixing schedules;
* continual learning: EWC, reservoir replay, parameter isolation.

Each part is its own module, named in docs/ARCHITECTURE.md. Submodules are imported on demand;
importing this package is free.
"""
