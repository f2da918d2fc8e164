"""``python -m seadeploy.compare``: the study's command line (exit code: the first failure's, 1 check failed, 2 bad
input, 3 backend unavailable)."""

from __future__ import annotations

import sys

from seadeploy import cli
from seadeploy.cli import (
    ArgumentParser,
    add_common_args,
    print_json,
    progress_enabled,
    run_main,
)
from seadeploy.compare.engine import run_compare
from seadeploy.compare.options import CompareOptions
from seadeploy.compare.summary import format_summary
from seadeploy.errors import ConfigError
from seadeploy.models.source import is_external


def _parser() -> ArgumentParser:
    d = CompareOptions()
    p = ArgumentParser(prog="python -m seadeploy.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=d.model, help=f"backbone (default {d.model})")
    p.add_argument("--attn", default=",".join(d.attn), help="comma-separated variants (default none,se,tse)")
    p.add_argument("--attn-arg", action="append", default=[], metavar="[VARIANT:]KEY=VALUE",
                   help="attention option, repeatable (tile=4 → every variant taking 'tile'; tse:tile=[2,2,4])")
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--data-root", default=None)
    # typed validators (seadeploy.cli): a bad value is refused while parsing, before any variant trains
    p.add_argument("--epochs", type=cli.non_negative_int, default=d.epochs, help="0: evaluate the source's weights")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="factory argument (user model)")
    p.add_argument("--weights", default=None, help="the user model's weights (.safetensors or a state dict)")
    p.add_argument("--input-size", type=cli.positive_int, default=None, help="the user model's input size")
    p.add_argument("--train-batch-size", type=cli.positive_int, default=d.train_batch_size,
                   help="training batch (default 64)")
    p.add_argument("--lr", type=cli.positive_float, default=d.lr, help="peak learning rate (default 4e-3)")
    p.add_argument("--warmup-epochs", type=cli.non_negative_float, default=d.warmup_epochs,
                   help="LR warm-up (default 0.3 epoch)")
    p.add_argument("--out", default=d.out, metavar="DIR", help=f"study folder (default {d.out})")
    p.add_argument("--batch", default="1,8", help="latency batch sizes (per-layer profile at the largest)")
    p.add_argument("--backends", default="torch,ort", help="profiling backends (torch, ort, ort:cuda, trt, openvino)")
    p.add_argument("--threads", type=cli.positive_int, default=d.threads, help="pinned threads while timing (default 1)")
    p.add_argument("--duration-s", type=cli.positive_float, default=d.duration_s, help="timing window per configuration")
    p.add_argument("--parity-samples", type=cli.positive_int, default=d.parity_samples,
                   help="test samples for export/validate")
    p.add_argument("--calib-samples", type=cli.positive_int, default=d.calib_samples, help="int8 calibration samples")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, help="use only N training samples (smoke runs)")
    p.add_argument("--limit-test", type=cli.positive_int, default=None, help="use only N test samples (smoke runs)")
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/<variant>/checkpoint.safetensors")
    p.add_argument("--strict-parity", action="store_true",
                   help="fail the study (exit 1) when fp16/int8 parity is out of tolerance, at export or validate "
                        "(default: only an fp32 failure fails it; an fp16/int8 failure is a warning and that "
                        "precision is left out of the measurements)")
    p.add_argument("--baseline", default=None, help="variant the ratios refer to (default se; original for a user model)")
    p.add_argument("--granularity", choices=("row", "pixel"), default=d.granularity,
                   help="streaming-accelerator stage: rows (default) or positions, FINN-style")
    add_common_args(p, out=False)
    return p


def _csv(text: str, kind: type = str) -> tuple:
    try:
        return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise ConfigError(f"expected a comma-separated list of {kind.__name__}, got '{text}'") from exc


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _main(argv: list[str] | None) -> int:
    a = _parser().parse_args(argv)
    o = CompareOptions(model=a.model, attn=_csv(a.attn), attn_args=tuple(a.attn_arg), dataset=a.dataset,
                       data_root=a.data_root, epochs=a.epochs, train_batch_size=a.train_batch_size, lr=a.lr,
                       warmup_epochs=a.warmup_epochs, out=a.out, batches=_csv(a.batch, int),
                       backends=_csv(a.backends), threads=a.threads, duration_s=a.duration_s,
                       parity_samples=a.parity_samples, calib_samples=a.calib_samples,
                       limit_train=a.limit_train, limit_test=a.limit_test, skip_train=a.skip_train, strict_parity=a.strict_parity,
                       baseline=a.baseline or ("original" if is_external(a.model) else CompareOptions.baseline),
                       device=a.device, model_args=tuple(a.model_arg), weights=a.weights, input_size=a.input_size,
                       granularity=a.granularity)
    if a.baseline and a.baseline not in (names := [v.name for v in o.variants()]):
        raise ConfigError(f"--baseline {a.baseline} is not a variant of --attn ({', '.join(names)})")
    summary = run_compare(o, progress=progress_enabled(a.json), log=_log)
    print_json(summary) if a.json else print(format_summary(summary))
    return summary["exit_code"]


def main(argv: list[str] | None = None) -> int:
    """``python -m seadeploy.compare`` / ``seadeploy compare``."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
