"""What the attention detector finds: blocks with their nodes by role, and the per-graph result
(:func:`seadeploy.graphs.attention.find_attention` builds it; roles, buffers, memory tags and the fp16 policy
read it)."""

from __future__ import annotations

import dataclasses
from typing import Any

SQUEEZE, EXCITE, GATE, SCALE = "attention.squeeze", "attention.excite", "attention.gate", "attention.scale"
ATTENTION_ROLES = (SQUEEZE, EXCITE, GATE, SCALE)


@dataclasses.dataclass(frozen=True)
class AttentionBlock:
    """One channel-attention block: its nodes by role and the tensors it starts from and writes.

    Attributes:
        name: the common module prefix of its nodes (metadata), else the name of its first reduction node.
        kind: ``channel`` (SE-like ``x·g(squeeze(x))``), ``channel+spatial`` (CBAM), ``shift`` (additive join: SB),
            ``global-context`` (attention pooling: a MatMul with weights computed from the map, joined by Add or
            Mul) or ``selective-kernel`` (stacked branches weighted by a softmax across them);
            :mod:`seadeploy.graphs.classify` says which the TSE lowering can rewrite.
        input: the tensor ``X`` the squeezes read; ``output``: what the (last) join writes.
        squeeze_ops: op types of the reductions; ``tiled``: a squeeze keeps a grid of tiles (TSE);
        ``reductions``: the reduction nodes themselves (part of ``squeeze``).
    """

    name: str
    kind: str
    input: str
    output: str
    squeeze: tuple[str, ...]
    excite: tuple[str, ...]
    gate: tuple[str, ...]
    scale: tuple[str, ...]
    squeeze_ops: tuple[str, ...]
    tiled: bool
    reductions: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[str, ...]:
        return (*self.squeeze, *self.excite, *self.gate, *self.scale)

    def roles(self) -> dict[str, str]:
        out = {}
        for role, names in ((SQUEEZE, self.squeeze), (EXCITE, self.excite), (GATE, self.gate), (SCALE, self.scale)):
            out.update(dict.fromkeys(names, role))
        return out


@dataclasses.dataclass
class AttentionGraph:
    """Result of :func:`find_attention`: the blocks, ``roles`` and ``block_of`` for every node name.

    ``roles`` holds the four ``attention.*`` roles for block nodes and ``None`` elsewhere (callers add their
    plain op-type roles); ``modules`` is the module path per node (``""`` without metadata); ``warnings``
    says when the graph has attention-like ops (a gate or broadcast multiply on a spatially reduced tensor)
    but no block was found.
    """

    blocks: list[AttentionBlock]
    roles: dict[str, str | None]
    block_of: dict[str, str | None]
    modules: dict[str, str]
    warnings: list[str]

    def __len__(self) -> int:
        return len(self.blocks)

    def block_modules(self) -> dict[str, str]:
        """``{module path: block}`` for the nodes of blocks that carry module metadata (maps PyTorch ops to blocks)."""
        out: dict[str, str] = {}
        for b in self.blocks:
            for n in b.nodes:
                if self.modules.get(n):
                    out.setdefault(self.modules[n], b.name)
        return out

    def block_of_module(self, module: str | None) -> str | None:
        """The block holding nodes of ``module`` or of its nearest parent module, else ``None``."""
        if not module:
            return None
        known = self.block_modules()
        while module:
            if module in known:
                return known[module]
            module = module.rpartition(".")[0]
        return None

    def keep_fp32_nodes(self) -> set[str]:
        """Nodes an fp16 graph keeps in fp32: every squeeze node from the first reduction on (the sums of H×W
        values that overflow fp16), the excitation and the gate. The ops before the reduction and the scale
        run on the full map and stay fp16."""
        out: set[str] = set()
        for b in self.blocks:
            out.update(b.excite, b.gate, _after_reductions(b))
        return out

    def summary(self) -> dict[str, Any]:
        """``attention_blocks`` and per-block role counts (the JSON the profiling commands embed)."""
        return {"attention_blocks": len(self.blocks),
                "blocks": [{"name": b.name, "kind": b.kind, "squeeze_ops": list(b.squeeze_ops), "tiled": b.tiled,
                            "squeeze": len(b.squeeze), "excite": len(b.excite), "gate": len(b.gate),
                            "scale": len(b.scale)} for b in self.blocks],
                "warnings": list(self.warnings)}


def _after_reductions(block: AttentionBlock) -> list[str]:
    """Squeeze nodes from the first reduction on (``squeeze`` is in graph order)."""
    first = next((i for i, n in enumerate(block.squeeze) if n in block.reductions), None)
    return [] if first is None else list(block.squeeze[first:])
