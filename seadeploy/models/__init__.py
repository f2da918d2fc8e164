"""Model zoo: backbones × attention, built by ``create_model(name, attn=..., attn_kwargs=...)``.

Adding a backbone = one module here whose builder is decorated with ``@register_model(...)`` (from
:mod:`seadeploy.models.zoo`) plus its import line below. See CONTRIBUTING.md.
"""

# The registered backbones (importing a module registers its builders), then the registry and factory.
from seadeploy.models import efficientnet, resnet, resnet_cifar, vgg_cifar
from seadeploy.models.attention import ATTENTION, create_attention, list_attention
from seadeploy.models.zoo import MODELS, ModelEntry, create_model, list_models, model_defaults, register_model

__all__ = ["MODELS", "ATTENTION", "ModelEntry", "create_model", "create_attention", "list_models", "list_attention",
           "register_model", "model_defaults", "efficientnet", "resnet", "resnet_cifar", "vgg_cifar"]
