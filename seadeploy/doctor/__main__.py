"""``python -m seadeploy.doctor [--json]`` (``seadeploy doctor``): report what this machine can run. Exit 0."""

from __future__ import annotations

from collections.abc import Sequence

from seadeploy.cli import ArgumentParser, print_json, run_main
from seadeploy.doctor import collect, render, summary


def _main(argv: list[str] | None) -> int:
    parser = ArgumentParser(prog="seadeploy doctor", description="What this machine can run: Python, PyTorch (CUDA), "
                            "ONNX Runtime (providers), TensorRT, pycuda, timm/torchvision, kornia; what each missing "
                            "piece disables and the line that installs it.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    checks = collect()
    if args.json:
        print_json(summary(checks))
    else:
        print(render(checks))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
