"""``python -m seadeploy.convert (--model SOURCE [--weights W] | --onnx FILE | RUN_DIR) --to tse --tile 7 --out RUN_DIR``.

    python -m seadeploy.convert --model tests/fixtures/user_model.py:build --input-size 32 --to tse --tile 4 --out runs/u-tse
    python -m seadeploy.convert --onnx model.onnx --to tse --tile 7 --tile 7 --tile 4 --out runs/o-tse   (one tile per map size)
    python -m seadeploy.convert runs/u-tse --to se --out runs/u-se
    python -m seadeploy.convert ... --dataset imagefolder --data-root DIR     (top-1 before/after)

Exit codes: 0 converted, 2 bad input (no attention to convert, weights that do not fit, ...), 3 a missing library.
"""

from __future__ import annotations

import sys

from seadeploy import cli
from seadeploy.convert.stage import ConvertOptions, format_report, run_convert
from seadeploy.errors import ConfigError
from seadeploy.models.factories import parse_floats
from seadeploy.models.source import ModelSource


def _tile(values: list[str]) -> object:
    parsed = [cli.parse_value(v) for v in values] or [7]
    if len(parsed) > 1:
        return parsed
    t = parsed[0]
    if isinstance(t, tuple) and len(t) != 2:
        return list(t)  # --tile 2,2,4,7: one per map size
    return t


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m seadeploy.convert", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder with checkpoint.safetensors")
    cli.add_model_args(p, onnx=True)
    p.add_argument("--to", default="tse", choices=("tse", "se"), help="target attention (default tse)")
    p.add_argument("--tile", action="append", default=[], help="tile k or kh,kw; repeat (or 2,2,4,7) for one per "
                   "attention map size, largest map first (default 7)")
    p.add_argument("--dataset", default=None, help="labelled data for top-1 before/after (e.g. imagefolder)")
    p.add_argument("--data-root", default=None, help="dataset folder (imagefolder: one sub-folder per class)")
    p.add_argument("--samples", type=cli.positive_int, default=256, help="labelled samples evaluated")
    p.add_argument("--latency-rounds", type=cli.positive_int, default=5, help="interleaved timing rounds")
    p.add_argument("--latency-runs", type=cli.positive_int, default=50, help="runs per round")
    cli.add_common_args(p)
    return p


def _main(argv: list[str] | None) -> int:
    a = _parser().parse_args(argv)
    given = [x for x in (a.run_dir, a.model, a.onnx) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of RUN_DIR, --model SOURCE or --onnx FILE (see --help)")
    if not a.out:
        raise ConfigError("--out RUN_DIR is required")
    if a.run_dir and a.run_dir.endswith(".onnx"):
        a.onnx, a.run_dir = a.run_dir, None  # a file where a folder is expected: it is an ONNX file
    opts = ConvertOptions(to=a.to, tile=_tile(a.tile), dataset=a.dataset, data_root=a.data_root, samples=a.samples,
                          latency_rounds=a.latency_rounds, latency_runs=a.latency_runs,
                          mean=parse_floats(a.mean, "--mean"), std=parse_floats(a.std, "--std"))
    source = ModelSource.from_args(a) if a.model or a.onnx else None
    report = run_convert(source, a.run_dir, a.out, opts)
    cli.print_json(report) if a.json else print(format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
