"""``python -m seadeploy.reports RUN_DIR [RUN_DIR ...] [--out DIR]``: the HTML/markdown report of run folders.

One folder gives that run's report (written into it by default); several give a comparison, named by
folder (or ``--names``), with ratios to ``--baseline``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seadeploy import runfolder
from seadeploy.cli import ArgumentParser, print_json, run_main
from seadeploy.errors import ConfigError, InputError
from seadeploy.reports import load_study, readers, write_study_report


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m seadeploy.reports", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders written by the stages")
    p.add_argument("--out", default=None, help="where report.html/.md go (default: the only RUN_DIR; required for several)")
    p.add_argument("--names", default=None, help="comma-separated variant names (default: folder names)")
    p.add_argument("--baseline", default="se", help="variant the ratios refer to (default se, else the first)")
    p.add_argument("--title", default=None)
    p.add_argument("--json", action="store_true", help="print the written paths and what was not measured as JSON")
    return p


#: run-folder files whose presence promises data: present but unreadable is bad input, not "not measured"
PRESENT_MUST_READ = ((runfolder.PARITY_JSON, readers.read_parity), (runfolder.LATENCY_CSV, readers.read_latency),
                     (runfolder.METRICS_CSV, readers.read_training), (runfolder.BUFFERS_JSON, readers.read_buffers))


def check_readable(dirs: list[Path]) -> None:
    """Raise ``InputError`` (exit 2, before any report is written) for a run file that exists but cannot be read;
    a missing file stays a "not measured" note of the report."""
    for d in dirs:
        for name, reader in PRESENT_MUST_READ:
            why = reader(d)[-1] if (d / name).is_file() else None
            if why:
                raise InputError(f"run folder '{d}': {why}")


def _main(argv: list[str] | None) -> int:
    a = _parser().parse_args(argv)
    dirs = [Path(d) for d in a.run_dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise InputError(f"run folder '{missing[0]}' does not exist")
    names = [n.strip() for n in a.names.split(",")] if a.names else [d.resolve().name for d in dirs]
    if len(names) != len(dirs) or len(set(names)) != len(names):
        raise ConfigError(f"need {len(dirs)} distinct names (got {names}); pass --names a,b,...")
    if a.out is None and len(dirs) > 1:
        raise ConfigError("--out DIR is required for a report over several run folders")
    check_readable(dirs)
    study = load_study(dict(zip(names, dirs)), {"baseline": a.baseline})
    first = study.runs.iloc[0] if not study.runs.empty else {}
    study.meta.update(model=first.get("model"), dataset=first.get("dataset"))
    paths = write_study_report(study, a.out or dirs[0], a.title)
    if a.json:
        print_json({"html": str(paths["html"]), "md": str(paths["md"]), "not_measured": study.notes})
    else:
        print(f"report: {paths['html']} (and {paths['md']})")
        for frame, notes in study.notes.items():
            print("\n".join(f"not measured ({frame}): {n}" for n in notes))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m seadeploy.reports``."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
