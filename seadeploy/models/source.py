"""Model sources: where a model comes from, how to rebuild it, what weights it loaded (docs/architecture.md §2).

One type, :class:`ModelSource`, for every kind; every stage takes a source the same way (``ModelSource.from_args``).
A source is one of::

    resnet20_cifar                      a zoo name (with --attn / --attn-arg, as before)
    my_pkg.nets:build                   a callable in an importable module returning an nn.Module
    path/to/file.py:build               the same, from a Python file (kwargs by --model-arg KEY=VALUE)
    timm:seresnext26d_32x4d             timm.create_model(NAME, pretrained=False, num_classes=...)   (optional)
    torchvision:efficientnet_b0         torchvision.models.get_model(NAME, num_classes=...)          (optional)
    model.onnx  (or onnx:model.onnx)    an ONNX file: its fp32 graph is the reference (no PyTorch model)

plus ``--weights FILE`` (safetensors, or a PyTorch state dict read with ``torch.load(weights_only=True)``),
``--input-size``, ``--num-classes``, ``--mean``/``--std``. A non-zoo source is recorded in the
:class:`~seadeploy.runfolder.ModelSpec` (``model`` = the source string with an absolute file path,
``model_kwargs`` = the factory arguments, ``attn="tse"`` + ``attn_kwargs={"tile": ...}`` after ``convert``),
so ``seadeploy.models.build_model(spec)`` — and every later stage — rebuilds it from the run folder alone; the weights'
SHA-256 goes into the checkpoint's ``extra["source"]``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seadeploy.cli import parse_kv_args
from seadeploy.errors import ConfigError, InputError
from seadeploy.fileio import sha256
from seadeploy.graphs.model_file import OnnxFile
from seadeploy.models.factories import LIBRARIES, accepts, call_factory, load_weights, parse_floats, resolve_factory
from seadeploy.models.structural import se_to_tse_structural
from seadeploy.models.zoo import create_model, model_defaults
from seadeploy.runfolder import Checkpoint, ModelSpec, check_input_size, load_state_checked, onnx_name

DEFAULT_EXTERNAL_INPUT = 224


KINDS = ("zoo", "factory", "timm", "torchvision", "onnx")


def is_external(model: str) -> bool:
    """True for every source that is not a zoo name (factories, timm, torchvision, ONNX files)."""
    return source_kind(model) != "zoo"


def source_kind(model: str) -> str:
    """``zoo``, ``factory`` (``pkg.mod:fn`` / ``file.py:fn``), ``timm``, ``torchvision`` or ``onnx``."""
    text = str(model)
    head = text.split(":")[0]
    if head == "onnx" or text.endswith(".onnx"):
        return "onnx"
    if head in LIBRARIES:
        return head
    return "factory" if ":" in text else "zoo"


def canonical(text: str) -> str:
    """The source string with a ``file.py`` or ``.onnx`` path made absolute (``onnx:/abs/path`` for an ONNX file), so
    a run folder rebuilds it from any directory."""
    if source_kind(text) == "onnx":
        path = Path(str(text).removeprefix("onnx:")).expanduser()
        if not path.is_file():
            raise InputError(f"ONNX file '{path}' does not exist" + (" (it is a folder: pass the .onnx file inside it, "
                                                                     "or the folder as RUN_DIR)" if path.is_dir() else ""))
        return f"onnx:{path.resolve()}"
    ref, sep, fn = str(text).rpartition(":")
    if sep and ref.endswith(".py"):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise InputError(f"model file '{ref}' does not exist (--model path/to/file.py:factory)")
        return f"{path.resolve()}:{fn}"
    return str(text)


def apply_conversion(net: nn.Module, spec: ModelSpec) -> nn.Module:
    """``net`` with the conversion ``spec`` records for a non-zoo model: ``attn="tse"`` tiles its SE-like blocks
    (those listed under ``blocks``, else every one found); no attention named keeps the model as it is."""
    if spec.attn == "tse":
        return se_to_tse_structural(net, tile=spec.attn_kwargs.get("tile", 7), input_size=spec.input_size,
                                    blocks=spec.attn_kwargs.get("blocks"))
    if spec.attn not in (None, "none", "original"):
        raise ConfigError(f"--attn {spec.attn} applies to zoo models; for '{spec.model}' convert with "
                          "python -m seadeploy.convert --to tse")
    return net


def build_external(spec: ModelSpec) -> nn.Module:
    """``seadeploy.models.build_model(spec)`` for a non-zoo source: factory(**model_kwargs), then the recorded conversion."""
    net = apply_conversion(call_factory(spec.model, dict(spec.model_kwargs)), spec)
    net.spec = spec
    return net


def onnx_argument(run_dir: str | None, onnx_file: str | None) -> tuple[str | None, str | None]:
    """``(run_dir, onnx_file)`` with a ``.onnx`` file given where a folder is expected moved to ``onnx_file``."""
    if run_dir and onnx_file:
        raise ConfigError("give either RUN_DIR or --onnx FILE, not both")
    if run_dir and Path(run_dir).is_file():
        if Path(run_dir).suffix != ".onnx":
            raise InputError(f"'{run_dir}' is a file but not an .onnx file; pass a run folder or --onnx FILE.onnx")
        return None, run_dir
    if onnx_file and Path(onnx_file).is_dir():
        if (Path(onnx_file) / onnx_name("fp32")).is_file():
            return onnx_file, None  # a run folder passed as --onnx
        raise InputError(f"--onnx expects a .onnx file but '{onnx_file}' is a folder without {onnx_name('fp32')}")
    return run_dir, onnx_file


# ------------------------------------------------------------------------------------------------- source
@dataclasses.dataclass
class ModelSource:
    """One model source and everything needed to rebuild it; ``build()`` gives the PyTorch reference."""

    model: str
    attn: str | None = None
    attn_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: str | None = None
    input_size: int | None = None
    num_classes: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self._net: nn.Module | None = None
        self._spec: ModelSpec | None = None
        self._state: dict[str, torch.Tensor] | None = None
        self.weights_sha256 = sha256(self.weights) if self.weights and Path(self.weights).is_file() else None
        if self.kind == "onnx":
            self.model = canonical(self.model)
            flags = [f for f, v in (("--attn", self.attn not in (None, "none", "original")), ("--weights", self.weights),
                                    ("--model-arg", self.model_kwargs), ("--attn-arg", self.attn_kwargs),
                                    ("--num-classes", self.num_classes), ("--input-size", self.input_size)) if v]
            if flags:
                raise ConfigError(f"{flags[0]} applies to PyTorch sources; an ONNX file brings its own graph, weights "
                                  "and input size")
        elif self.external:
            self.model = canonical(self.model)
            if self.attn_kwargs and self.attn in (None, "none"):
                raise ConfigError("--attn-arg applies to zoo models; a factory takes its options by --model-arg")
        elif self.model_kwargs:
            raise ConfigError("--model-arg is for factory/timm/torchvision sources; zoo models take --attn-arg")
        if self.input_size is not None and self.input_size < 1:
            raise ConfigError(f"--input-size must be ≥ 1, got {self.input_size}")

    @property
    def external(self) -> bool:
        return is_external(self.model)

    @property
    def kind(self) -> str:
        """One of :data:`KINDS`."""
        return source_kind(self.model)

    @property
    def has_torch_model(self) -> bool:
        """False for an ONNX file: its fp32 graph is the reference, there is nothing to train or rebuild."""
        return self.kind != "onnx"

    def onnx_file(self) -> OnnxFile:
        """The ONNX file of an ``onnx`` source (InputError when it is not a usable classifier graph)."""
        if self.kind != "onnx":
            raise ConfigError(f"model source '{self.model}' is a PyTorch model, not an ONNX file")
        return OnnxFile.load(self.model.removeprefix("onnx:"))

    @classmethod
    def from_args(cls, a: Any) -> ModelSource:
        """From parsed flags of :func:`seadeploy.cli.add_model_args` (``--onnx FILE`` is the ONNX kind of ``--model``)."""
        if getattr(a, "onnx", None):
            if getattr(a, "model", None):
                raise ConfigError("give either --model SOURCE or --onnx FILE, not both")
            return cls(model=f"onnx:{a.onnx}", mean=parse_floats(getattr(a, "mean", None), "--mean"),
                       std=parse_floats(getattr(a, "std", None), "--std"))
        return cls(model=a.model, attn=a.attn, attn_kwargs=parse_kv_args(getattr(a, "attn_arg", None)),
                   model_kwargs=parse_kv_args(getattr(a, "model_arg", None), flag="--model-arg"),
                   weights=getattr(a, "weights", None), input_size=a.input_size, num_classes=a.num_classes,
                   mean=parse_floats(getattr(a, "mean", None), "--mean"), std=parse_floats(getattr(a, "std", None), "--std"))

    # -- building
    def sizes_its_head(self) -> bool:
        """Whether ``num_classes`` reaches the model: a zoo model, timm/torchvision, or a factory taking it."""
        if not self.external:
            return True
        if "num_classes" in self.model_kwargs:
            return False  # the user's --model-arg num_classes=... decides
        return self.model.split(":")[0] in LIBRARIES or accepts(resolve_factory(self.model), "num_classes")

    def _raw(self) -> nn.Module:
        kwargs = dict(self.model_kwargs)
        if self.num_classes is not None and self.sizes_its_head():
            kwargs["num_classes"] = int(self.num_classes)
        self.model_kwargs = kwargs
        return call_factory(self.model, kwargs)

    def spec(self) -> ModelSpec:
        """The recipe written into the checkpoint (builds the model once to learn its input size and classes; an ONNX
        file's comes from its graph)."""
        if self._spec is None and self.kind == "onnx":
            self._spec = self.onnx_file().spec()
        if self._spec is None:
            self.build()
        assert self._spec is not None
        return self._spec

    def build(self) -> nn.Module:
        """The PyTorch model (eval mode) with ``--weights`` loaded; cached."""
        if self._net is not None:
            return self._net
        if self.kind == "onnx":
            raise ConfigError(f"'{self.model.removeprefix('onnx:')}' is an ONNX file: it has no PyTorch model to build "
                              "(train and convert --model take PyTorch sources; export, validate and profiling take it)")
        if not self.external:
            d = model_defaults(self.model)
            check_input_size(self.model, self.input_size or d.input_size, d.input_size)
            net = create_model(self.model, attn=self.attn, attn_kwargs=dict(self.attn_kwargs),
                               num_classes=self.num_classes or d.num_classes, input_size=self.input_size or d.input_size)
            spec = net.spec
        else:
            net = self._raw()
            size = self.input_size or _default_input_size(net, self.model)
            classes = _probe_classes(net, size, self.model)
            if self.num_classes is not None and classes != self.num_classes:
                raise InputError(f"model '{self.model}' outputs {classes} classes but --num-classes is "
                                 f"{self.num_classes}; pass it to the factory with --model-arg")
            converted = self.attn not in (None, "none", "original")
            spec = ModelSpec(model=self.model, attn=self.attn if converted else None,
                             attn_kwargs=dict(self.attn_kwargs) if converted else {}, num_classes=classes,
                             input_size=size, model_kwargs=dict(self.model_kwargs))
            net = apply_conversion(net, spec)
        if self.weights:
            state = load_weights(self.weights)
            load_state_checked(net, state, source=f"--weights '{self.weights}'",
                               hint=f"model '{self.model}' with {self.model_kwargs or 'no --model-arg'}")
        net.spec = spec
        self._net, self._spec = net.eval(), spec
        return net

    def record(self) -> dict[str, Any]:
        """What the manifest / checkpoint ``extra["source"]`` records."""
        return {"model": self.model, "model_kwargs": dict(self.model_kwargs), "attn": self.attn,
                "attn_kwargs": dict(self.attn_kwargs), "weights": str(Path(self.weights).resolve()) if self.weights
                else None, "weights_sha256": self.weights_sha256,
                "kind": self.kind}

    def checkpoint(self, mean: tuple[float, ...], std: tuple[float, ...], dataset: str | None,
                   seed: int | None = None) -> Checkpoint:
        """A self-describing checkpoint of the built model (``mean``/``std``: the dataset's unless --mean/--std).

        ``seed``: a model without ``--weights`` draws its weights from ``torch.manual_seed(seed)`` (recorded in
        ``extra["seed"]``), so the same command gives the same weights; the caller's RNG stream is left as it was.
        """
        extra: dict[str, Any] = {} if self.kind == "zoo" else {"source": self.record()}
        if seed is not None and not self.weights:
            self._net = None  # a model built earlier (to learn its spec) drew unseeded weights
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                net = self.build()
            extra.update(weights=f"random initialisation, seed {int(seed)} (exported from flags)", seed=int(seed))
        else:
            net = self.build()
            extra["weights"] = f"--weights {self.weights} (sha256 {self.weights_sha256})" if self.weights else \
                "random initialisation (exported from flags)"
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return Checkpoint(spec=self.spec(), state_dict=state, mean=tuple(self.mean or mean), std=tuple(self.std or std),
                          dataset=dataset, extra=extra)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ModelSource:
        """The source a recorded spec describes (a zoo backbone, a factory with its arguments, a converted model)."""
        return cls(model=spec.model, attn=spec.attn, attn_kwargs=dict(spec.attn_kwargs),
                   model_kwargs=dict(spec.model_kwargs), input_size=spec.input_size, num_classes=spec.num_classes)

    def describe(self) -> str:
        extra = f" {self.model_kwargs}" if self.model_kwargs else ""
        w = f" weights={Path(self.weights).name}" if self.weights else ""
        return f"{self.model}{extra}{w}"


def _default_input_size(net: nn.Module, model: str) -> int:
    """``--input-size`` default: the model's own ``input_size``/``default_cfg`` attribute, else 224."""
    for attr in ("default_input_size", "input_size"):
        v = getattr(net, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    cfg = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), tuple | list):
        return int(cfg["input_size"][-1])
    return DEFAULT_EXTERNAL_INPUT


def _probe_classes(net: nn.Module, size: int, model: str) -> int:
    """Run one zero image to check the model runs at ``size`` and returns ``(N, classes)`` logits."""
    was = net.training
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(1, 3, size, size))
    except Exception as exc:  # noqa: BLE001 - the user's forward may raise anything
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"model '{model}' fails on a 1×3×{size}×{size} input ({type(exc).__name__}: {first}); "
                         "pass the right --input-size") from exc
    finally:
        net.train(was)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"model '{model}' must return logits of shape (N, classes), got {shape}")
    return int(out.shape[1])
