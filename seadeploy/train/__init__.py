"""Training: named recipes (MODELS.md §4), the loop (checkpoints, metrics, curves, resume, DDP), evaluation.

Example:
    >>> from seadeploy.train import make_config, train
    >>> result = train(make_config(model="resnet20_cifar", attn="se", epochs=5, out="runs/d-se"))
    >>> result.best_top1 >= 95, result.to_frame().columns[:3].tolist()
    (True, ['epoch', 'lr', 'train_loss'])

Command line: ``python -m seadeploy.train --help`` (and ``python -m seadeploy.train eval --help``).
"""

from __future__ import annotations

import os
import sys

if "torch" not in sys.modules:
    # GNU OpenMP (torch's CPU threads) spin-waits by default. On a shared or oversubscribed CPU that made
    # 2-thread training up to 20x slower (measured: 7.7 s vs 0.36 s per ResNet-20 step); passive waiting
    # costs little when the machine is idle. Only effective before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from seadeploy.train.evaluate import evaluate  # noqa: E402
from seadeploy.train.loop import TrainResult, resume_config, train  # noqa: E402
from seadeploy.train.recipes import RECIPES, TrainConfig, list_recipes, make_config  # noqa: E402
from seadeploy.train.transfer import CONVERSIONS, TransferResult, evaluate_run  # noqa: E402

__all__ = ["CONVERSIONS", "RECIPES", "TrainConfig", "TrainResult", "TransferResult", "evaluate", "evaluate_run",
           "list_recipes", "make_config", "resume_config", "train"]
