"""``python -m seadeploy.train`` trains; ``python -m seadeploy.train eval RUN_DIR [--convert ...]`` evaluates.

    python -m seadeploy.train --model resnet20_cifar --attn se --dataset digits --epochs 5 --out runs/d-se
    python -m seadeploy.train --recipe sb-vgg-cifar --data-root data --out runs/sb   |   --resume runs/d-se
    torchrun --nproc_per_node 2 -m seadeploy.train --model resnet20_cifar --out runs/ddp
    python -m seadeploy.train eval runs/d-se --convert se-to-tse --attn-arg tile=4
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from seadeploy import cli
from seadeploy.errors import ConfigError
from seadeploy.runfolder import CHECKPOINT, Checkpoint
from seadeploy.train import CONVERSIONS, evaluate_run, list_recipes, make_config, resume_config, train
from seadeploy.train.recipes import add_config_args


def _train(argv: list[str]) -> int:
    p = cli.ArgumentParser(prog="python -m seadeploy.train", description="Train a model (see --recipe).")
    p.add_argument("--recipe", default=None, help=f"preset to start from: {', '.join(list_recipes())} (default digits)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last complete epoch")
    p.add_argument("--threads", type=cli.positive_int, default=None, help="CPU threads for torch (default: torch's choice)")
    cli.add_model_args(p)
    cli.add_common_args(p)
    add_config_args(p)
    args = vars(p.parse_args(argv))
    args["attn_kwargs"] = cli.parse_kv_args(args.pop("attn_arg")) or None
    args["model_kwargs"] = cli.parse_kv_args(args.pop("model_arg"), flag="--model-arg") or None
    unused = [f"--{k}" for k in ("mean", "std", "onnx") if args.pop(k, None) is not None]
    if unused:
        raise ConfigError(f"train does not take {unused[0]}: it normalises with --normalize dataset|half|imagenet "
                          "and trains a PyTorch model (--model SOURCE, or --weights RUN/checkpoint.safetensors)")
    if args["weights"] and not args["model"] and not args["resume"]:
        _model_from_checkpoint(args)  # --weights RUN/checkpoint.safetensors: fine-tune that model (e.g. a convert run)
    json_mode, threads = args.pop("json"), args.pop("threads")
    if threads is not None:
        torch.set_num_threads(threads)
    recipe, resume = args.pop("recipe"), args["resume"]
    cfg = resume_config(resume, **args) if resume else make_config(recipe, **args)
    result = train(cfg, progress=cli.progress_enabled(json_mode), log=None if json_mode else print)
    if result.rank == 0:
        if json_mode:
            cli.print_json(result.summary())
        else:
            where = f" → {result.run_dir}" if result.run_dir else ""
            print(f"best test top-1 {result.best_top1:.2f}% at epoch {result.best_epoch}{where} "
                  f"({result.elapsed_s:.1f}s){'' if result else '  FAILED: below --target-acc'}")
    return 0 if result else 1


def _model_from_checkpoint(args: dict) -> None:
    """Fill --model/--attn/--model-arg/--input-size from a seadeploy checkpoint given as --weights."""
    path = Path(args["weights"])
    path = path / CHECKPOINT if path.is_dir() else path
    spec = Checkpoint.load(path).spec
    args.update(weights=str(path), model=spec.model, attn=spec.attn, attn_kwargs=dict(spec.attn_kwargs) or None,
                model_kwargs=dict(spec.model_kwargs) or None, input_size=args["input_size"] or spec.input_size)


def _eval(argv: list[str]) -> int:
    p = cli.ArgumentParser(prog="python -m seadeploy.train eval",
                       description="Evaluate a trained run, optionally after converting its attention (no retraining).")
    p.add_argument("run_dir", help="run folder (or .safetensors checkpoint) to evaluate")
    p.add_argument("--convert", choices=CONVERSIONS, default=None, help="attention conversion to apply first")
    p.add_argument("--donor", default=None, metavar="RUN_DIR2", help="swap: run whose attention modules are used")
    p.add_argument("--donor-train-mode", action="store_true", help="swap: donor modules in train mode (as the repo)")
    p.add_argument("--attn-arg", action="append", default=[], metavar="KEY=VALUE", help="conversion option (tile=4)")
    p.add_argument("--dataset", default=None, help="dataset (default: the checkpoint's)")
    p.add_argument("--data-root", default=None, help="dataset folder for cifar*/imagefolder")
    p.add_argument("--batch-size", type=cli.positive_int, default=256, help="evaluation batch size")
    p.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate only the first N test samples")
    p.add_argument("--max-drop", type=cli.finite_float, default=None,
                   help="exit 1 when top-1 drops by more points than this")
    p.add_argument("--save", default=None, metavar="RUN_DIR", help="write the converted checkpoint to this run folder")
    cli.add_common_args(p, out=False)
    a = p.parse_args(argv)
    result = evaluate_run(a.run_dir, convert=a.convert, donor=a.donor, attn_kwargs=cli.parse_kv_args(a.attn_arg),
                          dataset=a.dataset, data_root=a.data_root, batch_size=a.batch_size, device=a.device,
                          limit=a.limit, save=a.save, max_drop=a.max_drop, donor_train_mode=a.donor_train_mode)
    if a.json:
        cli.print_json(result.summary())
    else:
        print(result.to_frame().to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0 if result else 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return _eval(argv[1:]) if argv[:1] == ["eval"] else _train(argv)


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
