"""Training: named recipes (docs/models.md §4), the loop (checkpoints, metrics, curves, resume, DDP), evaluation.

Example:
    >>> from seadeploy.train import make_config, train
    >>> result = train(make_config(model="resnet20_cifar", attn="se", epochs=5, out="runs/d-se"))
    >>> result.best_top1 >= 95, result.to_frame().columns[:3].tolist()
    (True, ['epoch', 'lr', 'train_loss'])

Command line: ``python -m seadeploy.train --help`` (and ``python -m seadeploy.train eval --help``).
"""

from __future__ import annotations

from seadeploy.train.evaluate import evaluate
from seadeploy.train.loop import TrainResult, resume_config, train
from seadeploy.train.recipes import RECIPES, TrainConfig, list_recipes, make_config
from seadeploy.train.transfer import CONVERSIONS, TransferResult, evaluate_run

__all__ = ["CONVERSIONS", "RECIPES", "TrainConfig", "TrainResult", "TransferResult", "evaluate", "evaluate_run",
           "list_recipes", "make_config", "resume_config", "train"]
