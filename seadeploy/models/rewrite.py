"""SE ↔ TSE conversion of a PyTorch model (docs/models.md §2.2.3), one entry for every model source.

* ``convert_model(net, spec, to, tile)``: what ``convert`` and a source with ``--attn tse`` call — the zoo's
  weight conversion for zoo models, the structural rewrite (:mod:`seadeploy.models.structural`) for any other.

* ``se_to_tse(model, tile)``: the paper-faithful drop-in. ONE trained SE network becomes a TSE network with
  the same weights — every global average becomes a tiled average; ``Linear(out, in)`` → ``Conv1x1`` weight
  ``(out, in, 1, 1)``, BatchNorm1d → BatchNorm2d (weight, bias, running stats, ``num_batches_tracked``).
  With a tile that covers the map the result equals the SE network (to float rounding).
* ``tse_to_se(model)``: the inverse reshape; ``tse_to_se(se_to_tse(m))`` has exactly ``m``'s weights.
* ``swap_attention(receiver, donor)``: what the unofficial TSE repo did for its "SE→TSE"/"TSE→SE" rows:
  put the donor network's attention modules into the receiver's backbone, optionally keeping the donor
  modules in training mode (their BatchNorm then uses batch statistics), as the repo did by accident.

Models carry ``model.spec`` (set by ``create_model``); converted models get a new spec saying the new attention.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.models.attention.base import is_attention
from seadeploy.models.attention.se import bn_form
from seadeploy.models.build import build_model
from seadeploy.models.source import apply_conversion
from seadeploy.models.structural import tiled_blocks, tse_to_se_structural
from seadeploy.models.zoo import MODELS
from seadeploy.runfolder import ModelSpec, load_state_checked


def attention_paths(model: nn.Module) -> list[str]:
    """Module paths of the zoo's attention blocks (instances of registered attention classes), in module order."""
    return [name for name, m in model.named_modules() if is_attention(m)]


def _spec(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError(
            "the model has no .spec; build it with seadeploy.models.create_model or "
            "seadeploy.models.load_model() so it can be converted"
        )
    return spec


def _rebuild(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Build ``spec`` and load ``model``'s weights, reshaping FC ↔ 1×1-conv weights of the attention MLPs."""
    new = build_model(spec)
    target = new.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        want = target.get(key)
        if want is not None and want.shape != value.shape and want.numel() == value.numel() and ".attn." in key:
            value = value.reshape(want.shape)
        state[key] = value.clone()
    load_state_checked(new, state, source="converted", hint=spec)
    new.train(model.training)
    return new


def se_to_tse(model: nn.Module, tile: Any = 7) -> nn.Module:
    """A TSE copy of an SE model with the same weights; ``tile`` is ``k``, ``(kh, kw)`` or a per-stage list.

    Raises:
        ConfigError: the model's attention is not ``se`` with the ``avg`` squeeze.
    """
    spec = _spec(model)
    if spec.attn != "se":
        raise ConfigError(f"se_to_tse needs a model with attn='se', this one has attn='{spec.attn}'")
    kw = dict(spec.attn_kwargs)
    if kw.pop("squeeze", "avg") != "avg":
        raise ConfigError(
            f"only the 'avg' squeeze has a tiled counterpart; this SE uses squeeze='{spec.attn_kwargs['squeeze']}'"
        )
    kw["bn"] = bn_form(kw.get("bn", False), true_means="both")  # SE's bn=True is BN after both layers
    kw["tile"] = tile
    return _rebuild(model, dataclasses.replace(spec, attn="tse", attn_kwargs=kw))


def tse_to_se(model: nn.Module) -> nn.Module:
    """An SE copy of a TSE model with the same weights (1×1 conv → Linear, BN2d → BN1d)."""
    spec = _spec(model)
    if spec.attn != "tse":
        raise ConfigError(f"tse_to_se needs a model with attn='tse', this one has attn='{spec.attn}'")
    kw = dict(spec.attn_kwargs)
    kw.pop("tile", None)
    kw["bn"] = bn_form(kw.get("bn", False), true_means="hidden")  # TSE's bn=True is BN after the first only
    return _rebuild(model, dataclasses.replace(spec, attn="se", attn_kwargs=kw))


def _force_train(module: nn.Module, args: tuple) -> None:
    module.train(True)


def _lock_train_mode(module: nn.Module) -> None:
    """Force ``module`` (and its children) into training mode at every forward, whatever ``.eval()`` said."""
    module.register_forward_pre_hook(_force_train)


def swap_attention(receiver: nn.Module, donor: nn.Module, donor_train_mode: bool = False) -> nn.Module:
    """A copy of ``receiver`` whose attention modules are (copies of) ``donor``'s, path by path.

    Args:
        receiver: the backbone that is kept (e.g. the TSE-trained VGG for the repo's "SE→TSE" row).
        donor: the network whose attention modules are inserted (e.g. the SE-trained VGG).
        donor_train_mode: keep the inserted modules in training mode even after ``.eval()`` (the repo's
            behaviour: its donor models were saved right after ``model.train()``).

    Returns:
        The new model; its ``spec`` is the receiver's backbone with the donor's attention, so its weights
        fit ``build_model(spec)`` (train-mode locking is not part of a spec).

    Raises:
        ConfigError: the two models do not have attention at the same module paths.
    """
    paths, donor_paths = attention_paths(receiver), attention_paths(donor)
    if not paths or paths != donor_paths:
        raise ConfigError(
            f"cannot swap attention: receiver has {len(paths)} attention blocks and donor has "
            f"{len(donor_paths)} at different paths; both need the same backbone with attention"
        )
    new = copy.deepcopy(receiver)
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = new.get_submodule(parent_path) if parent_path else new
        module = copy.deepcopy(donor.get_submodule(path))
        if donor_train_mode:
            _lock_train_mode(module)
        setattr(parent, name, module)
    spec, dspec = getattr(receiver, "spec", None), getattr(donor, "spec", None)
    if isinstance(spec, ModelSpec) and isinstance(dspec, ModelSpec):
        new.spec = dataclasses.replace(spec, attn=dspec.attn, attn_kwargs=dict(dspec.attn_kwargs))
    return new


def tile_value(tile: Any) -> Any:
    """A tile as JSON records it (tuples become lists)."""
    return [list(t) if isinstance(t, tuple) else t for t in tile] if isinstance(tile, list) else tile


def convert_model(net: nn.Module, spec: ModelSpec, to: str = "tse", tile: Any = 7,
                  blocks: list[str] | None = None) -> tuple[nn.Module, ModelSpec, list[dict[str, Any]]]:
    """``(converted copy, its spec, one record per converted block)`` for SE → TSE (``to="tse"``) or back.

    A zoo model (``spec.model`` in the registry) converts its weights to the other attention class; any other model
    has its SE-like modules rewritten in place of their class (same parameters and state-dict keys), and the spec
    records ``attn="tse"`` with the tile and the converted block paths so ``build_model`` rebuilds it.

    Raises:
        ConfigError: an unknown direction, a model that is not SE (to TSE) or not a converted TSE (back).
        InputError: no SE-like module found.
    """
    if to not in ("tse", "se"):
        raise ConfigError(f"--to must be tse or se, got '{to}'")
    if spec.model in MODELS:
        net.spec = spec
        new = se_to_tse(net, tile=tile) if to == "tse" else tse_to_se(net)
        tiles = new.spec.attn_kwargs.get("tile", ()) if to == "tse" else None
        return new, new.spec, [{"block": p, "tile": tile_value(tiles)} for p in attention_paths(new)]
    if to == "tse":
        if spec.attn == "tse":
            raise ConfigError("the model is already TSE (converted before); use --to se to go back first")
        asked = dataclasses.replace(spec, attn="tse", attn_kwargs={"tile": tile_value(tile), "blocks": blocks})
        new = apply_conversion(net, asked)
        tiles = tiled_blocks(new)
        new_spec = dataclasses.replace(asked, attn_kwargs={"tile": tile_value(tile), "blocks": list(tiles)})
        return new, new_spec, [{"block": p, "tile": list(t)} for p, t in tiles.items()]
    if spec.attn != "tse":
        raise ConfigError(f"--to se needs a model converted to TSE by seadeploy.convert; '{spec.model}' is not")
    records = [{"block": p, "tile": None} for p in tiled_blocks(net)]
    return tse_to_se_structural(net), dataclasses.replace(spec, attn=None, attn_kwargs={}), records
