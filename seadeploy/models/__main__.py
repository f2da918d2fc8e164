"""``python -m seadeploy.models list | stats | table`` — the model zoo and its statistics.

python -m seadeploy.models list
python -m seadeploy.models stats --model resnet56_cifar --attn se --attn-arg bias=false --json
python -m seadeploy.models stats --model path/to/net.py:build --model-arg width=16 --input-size 32
python -m seadeploy.models table --models 'resnet*_cifar,vgg16_cifar' --attn none,se,tse
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from seadeploy.cli import ArgumentParser, add_model_args, parse_kv_args, print_json, run_main
from seadeploy.errors import ConfigError
from seadeploy.export.onnx_export import export_onnx
from seadeploy.graphs.classify import classify, kinds_line
from seadeploy.models import list_attention, list_models, model_defaults
from seadeploy.models.source import ModelSource, is_external
from seadeploy.models.stats import compute_stats, model_stats, zoo_table
from seadeploy.models.structural import find_se_modules


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m seadeploy.models", description="List the zoo; count params, MACs and the attention's own work."
    )
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=ArgumentParser)
    ls = sub.add_parser("list", help="registered backbones and attention blocks")
    ls.add_argument("--json", action="store_true", help="print JSON")
    st = sub.add_parser("stats", help="params, MACs, activations and attention work of one model")
    add_model_args(st, required=True)
    st.add_argument("--json", action="store_true", help="print JSON")
    tb = sub.add_parser("table", help="params and MACs of many models × attentions")
    tb.add_argument("--models", default="*", help="comma-separated names or shell patterns (default: all)")
    tb.add_argument("--attn", default="none,se,tse", help="comma-separated attention names")
    tb.add_argument("--input-size", type=int, default=None, help="input size for all (default: each model's)")
    tb.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "list":
        models = {
            n: {
                "family": (e := model_defaults(n)).family,
                "default_attn": e.default_attn,
                "input_size": e.input_size,
                "num_classes": e.num_classes,
            }
            for n in list_models()
        }
        if args.json:
            print_json({"models": models, "attention": list_attention()})
        else:
            for n, m in models.items():
                print(
                    f"{n:20s} {m['family']:14s} attn={m['default_attn']:5s} {m['input_size']}px {m['num_classes']} classes"
                )
            print("attention:", ", ".join(list_attention()))
        return 0
    if args.cmd == "stats":
        if is_external(args.model) or args.weights or args.model_arg:
            stats = _source_stats(args)
        else:
            stats = model_stats(args.model, args.attn, parse_kv_args(args.attn_arg), args.input_size,
                                args.num_classes)
        print_json(stats.to_dict()) if args.json else print(stats.format())
        return 0
    names = [n for pat in args.models.split(",") for n in list_models(pat.strip())]
    if not names:
        raise ConfigError(f"no model matches '{args.models}'. Valid choices: {', '.join(list_models())}")
    frame = zoo_table(names, [a.strip() for a in args.attn.split(",")], args.input_size)
    print_json(frame.to_dict(orient="records")) if args.json else print(frame.to_string(index=False))
    return 0


def _source_stats(args):
    """Stats of a user's model (models/source.py). Its attention blocks are the graph analysis's, with their kind
    and why TSE keeps them (graphs/classify.py, as every other command reports them), plus any SE-like module found
    by behaviour only (models/structural.py); their work is measured (models/stats.measured_work)."""
    src = ModelSource.from_args(args)
    net, spec = src.build(), src.spec()
    with tempfile.TemporaryDirectory(prefix="seadeploy-stats-") as tmp:
        classes = classify(export_onnx(net, Path(tmp) / "model.onnx", spec.input_shape, dynamic_batch=False,
                                       example_batch=1))
    modules = dict(net.named_modules())
    by_path = {c.block: c for c in classes if c.block in modules}
    paths = list(by_path) + [p for p, _ in find_se_modules(net, spec.input_size) if p not in by_path]
    stats = compute_stats(net, spec.input_size, blocks=paths)
    if not stats.attention.empty:
        kinds = {p: by_path[p].kind if p in by_path else "channel" for p in paths}
        stats.attention.insert(1, "kind", stats.attention["module"].map(kinds))
        stats.attention["tse_reason"] = stats.attention["module"].map(lambda p: by_path[p].reason if p in by_path else "")
    stats.summary.update(model=spec.model, input_size=spec.input_size, attn_kinds=kinds_line(classes),
                         attn_modules=", ".join(stats.attention.get("module", [])) or "none")
    unnamed = [c.block for c in classes if c.block not in modules]
    if unnamed:
        stats.summary["attn_unmapped"] = ", ".join(unnamed)  # graph blocks without a module path: work not measured
    return stats


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
