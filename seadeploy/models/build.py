"""Build the PyTorch model a :class:`~seadeploy.runfolder.ModelSpec` (plain data) or a checkpoint describes.

``runfolder`` holds the spec and checkpoint formats and knows nothing of the zoo; this module is where a spec
meets the backbone registry (:mod:`seadeploy.models.zoo`) or a user's model source (:mod:`seadeploy.models.source`).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from seadeploy.models.source import build_external, is_external
from seadeploy.models.zoo import MODELS, create_model, resolve_attention
from seadeploy.runfolder import Checkpoint, ModelSpec, check_input_size, load_state_checked


def resolve_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` with its backbone's attention defaults written out (e.g. the CIFAR TSE tile) and its input size checked.

    Call it where a spec is made from flags, so a saved spec keeps its meaning even if a default changes later.
    A user source (``x:y``) and an unknown name come back unchanged (:func:`build_model` reports the latter).
    """
    if spec.model not in MODELS:
        return spec
    check_input_size(spec.model, spec.input_size, MODELS.get(spec.model).input_size)
    _, kwargs = resolve_attention(spec.model, spec.attn, spec.attn_kwargs)
    return dataclasses.replace(spec, attn_kwargs=kwargs)


def build_model(spec: ModelSpec) -> nn.Module:
    """Instantiate the PyTorch model ``spec`` describes (a zoo name, or a ``x:y`` source: models/source.py)."""
    if is_external(spec.model):
        return build_external(spec)
    spec = resolve_spec(spec)
    return create_model(spec.model, attn=spec.attn, attn_kwargs=dict(spec.attn_kwargs), num_classes=spec.num_classes,
                        input_size=spec.input_size, **spec.model_kwargs)


def load_model(ckpt: Checkpoint) -> nn.Module:
    """Rebuild the checkpoint's model from its spec and load its weights (one ``InputError`` naming a misfit), eval mode."""
    model = build_model(ckpt.spec)
    load_state_checked(model, ckpt.state_dict, source="checkpoint", hint=ckpt.spec)
    return model.eval()
