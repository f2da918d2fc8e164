"""seadeploy: deploy and analyse CNNs with squeeze-and-excite style channel attention."""

from __future__ import annotations

import os
import sys

if "torch" not in sys.modules:
    # GNU OpenMP (torch's CPU threads) spin-waits by default. On a shared or oversubscribed CPU that made
    # 2-thread training up to 20x slower (measured: 7.7 s vs 0.36 s per ResNet-20 step); passive waiting
    # costs little on an idle machine. Only effective before torch is first imported; set
    # OMP_WAIT_POLICY yourself to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def create_model(*args, **kwargs):
    """See :func:`seadeploy.models.create_model`."""
    from seadeploy.models import create_model as _create

    return _create(*args, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """See :func:`seadeploy.models.list_models`."""
    from seadeploy.models import list_models as _list

    return _list(pattern)


def list_attention() -> list[str]:
    """See :func:`seadeploy.models.attention.list_attention`."""
    from seadeploy.models.attention import list_attention as _list

    return _list()


__all__ = ["create_model", "list_models", "list_attention", "__version__"]
