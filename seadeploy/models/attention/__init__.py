"""Channel-attention zoo: one registry (:mod:`.base`), one module per attention.

Adding an attention = one module here defining a class decorated with ``@register_attention("name")``
(with a ``work()`` method) plus its import line below. See CONTRIBUTING.md.
"""

# The registered attention classes (importing a module registers its class) and the registry itself.
from seadeploy.models.attention import cbam, rgse, sb, se, spse, tse
from seadeploy.models.attention.base import (
    ATTENTION,
    AttentionWork,
    create_attention,
    is_attention,
    list_attention,
    register_attention,
    resolve_stage_value,
)

__all__ = ["ATTENTION", "AttentionWork", "create_attention", "is_attention", "list_attention", "register_attention",
           "resolve_stage_value", "se", "cbam", "rgse", "sb", "spse", "tse"]
