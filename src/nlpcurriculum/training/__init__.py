"""Training: the trainer, its LR schedule, exact checkpoints and the token-stream batcher."""

from nlpcurriculum.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nlpcurriculum.training.data import TokenBatcher
from nlpcurriculum.training.lr_schedule import WarmupCosine, build_scheduler
from nlpcurriculum.training.trainer import (
    TrainResult,
    Trainer,
    TrainerConfig,
    lm_loss,
    param_groups,
    seed_everything,
)

__all__ = [
    "CheckpointError",
    "TokenBatcher",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "WarmupCosine",
    "build_scheduler",
    "lm_loss",
    "load_checkpoint",
    "param_groups",
    "save_checkpoint",
    "seed_everything",
]
