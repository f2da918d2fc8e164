"""The report's content: turn a :class:`~seadeploy.reports.study.StudyData` into sections.

Every section is always present; where its data is missing it carries ``not measured: <reason>``
(the reasons recorded while the study was loaded or run). The first section answers the study's
question: what does tiled vs global squeeze cost and buy here?
"""

from __future__ import annotations

import pandas as pd

from seadeploy.reports import plots, tables
from seadeploy.reports.render import NOT_MEASURED, WARNING, FigureItem, Section, Table
from seadeploy.reports.study import StudyData

HEADERS = {
    "accuracy": "test acc (%)", "acc_ort_fp32": "ORT fp32 acc (%)", "acc_ort_fp16": "ORT fp16 acc (%)",
    "acc_ort_int8": "ORT int8 acc (%)", "int8_target": "int8 form", "latency_ms": "median latency (ms)", "attention_pct": "attention share (%)",
    "attention_buffer_elements": "attention buffer (elem)", "total_buffer_elements": "total buffer (elem)",
    "accuracy_delta_pp": "Δ acc (pp)", "median_ms": "median (ms)", "iqr_ms": "IQR (ms)", "p90_ms": "p90 (ms)",
    "p99_ms": "p99 (ms)", "ms_per_sample": "ms / sample", "throughput_ips": "samples/s", "attention_ms": "attention (ms)",
    "total_ms": "sum of layers (ms)", "squeeze_pct": "squeeze %", "excite_pct": "excite %", "gate_pct": "gate %",
    "scale_pct": "scale %", "attn_kwargs": "attn args", "cv": "CV %", "attention_buffer_bytes": "attention buffer (B)",
    "total_buffer_bytes": "total buffer (B)",
}


PARITY_COLUMNS = ("variant", "backend", "precision", "inputs", "n", "max_abs", "mean_abs", "max_rel", "cosine", "top1",
                  "accuracy", "ref_accuracy", "passed")


def _missing(study: StudyData, *frames: str, default: str) -> str:
    notes = [n for f in frames for n in study.notes.get(f, [])]
    return "; ".join(dict.fromkeys(notes)) or default


def _notes(study: StudyData, *frames: str) -> list[str]:
    """Partial gaps and warnings, shown under a section that has some data."""
    notes = [n for f in frames for n in study.notes.get(f, [])]
    warns = [w for f in frames for w in study.warnings.get(f, [])]
    return [f"{NOT_MEASURED}: {n}" for n in dict.fromkeys(notes)] + [f"{WARNING}: {w}" for w in dict.fromkeys(warns)]


LATENCY_HEADERS = {"interval": "95% interval", "difference": "difference", "spread": "IQR/median (%)", "p10_ms": "p10 (ms)",
                   "cpu_median_ms": "thread CPU median (ms)", "ratio_clock": "ratio clock"}


def _headers(base: str | None) -> dict[str, str]:
    b = base or "baseline"
    return {**HEADERS, "latency_x": f"latency × {b}", "attn_buffer_x": f"attn buffer × {b}",
            "total_buffer_x": f"total buffer × {b}", "ratio": f"× {b}"}


def _fmt(v: float, spec: str = ".3g", unit: str = "") -> str:
    return f"{v:{spec}}{unit}" if v == v else "n/a"


def answer_lines(comp: pd.DataFrame) -> list[str]:
    """One sentence per variant comparing it with the baseline (global squeeze), from the comparison table."""
    base = comp.attrs.get("baseline")
    need = {"latency_x", "latency_ms", "attention_pct", "attn_buffer_x", "attention_buffer_elements"}
    if base is None or comp.empty or not need <= set(comp.columns):
        return []
    b = comp.set_index("variant").loc[base]
    point = comp.attrs.get("latency_point")
    where = f"{point[0]} {point[1]}, batch {point[2]}" if point else "not measured"
    lines = []
    for _, r in comp.iterrows():
        if r["variant"] == base:
            continue
        acc = f"accuracy {_fmt(r.get('accuracy', float('nan')), '.2f', '%')} vs {_fmt(b.get('accuracy', float('nan')), '.2f', '%')}"
        lat = latency_phrase(r, b, where)
        share = (f"attention takes {_fmt(r['attention_pct'], '.1f', '%')} of per-layer time "
                 f"(vs {_fmt(b['attention_pct'], '.1f', '%')})")
        buf = (f"attention buffering {_fmt(r['attn_buffer_x'], '.3g', '×')} "
               f"({_fmt(r['attention_buffer_elements'], ',.0f')} vs {_fmt(b['attention_buffer_elements'], ',.0f')} elements)")
        lines.append(f"**{r['variant']}** vs **{base}**: {acc}; {lat}; {share}; {buf}.")
    return lines


def latency_phrase(r: pd.Series, b: pd.Series, where: str) -> str:
    """The answer's latency clause: a difference is stated only when its own interval excludes 1."""
    ms = f"{_fmt(r['latency_ms'], '.3g')} ms vs {_fmt(b['latency_ms'], '.3g')} ms"
    low, high = r.get("latency_x_low", float("nan")), r.get("latency_x_high", float("nan"))
    verdict = tables.noise_label(low, high)
    if verdict == "no interval":
        return (f"latency ({where}) not timed side by side: medians {ms} ({_fmt(r['latency_x'], '.2f', '×')}), no "
                "interval, so no difference is claimed")
    clock = "thread CPU time" if r.get("latency_clock") == "thread_cpu" else "wall time"
    span = f"{_fmt(r['latency_x'], '.2f', '×')} [{low:.2f}, {high:.2f}]"
    if verdict == "within noise":
        return f"latency ({where}) within noise: {span} ({clock}; {ms})"
    return f"latency ({where}) {verdict}: {span} ({clock}; {ms})"


def runtime_lines(runtimes: pd.DataFrame, batch: int | None = None) -> list[str]:
    """"Which runtime is faster for this model": one sentence per pair of runtimes and precision, at ``batch`` (default:
    the smallest), every variant's ratio with its interval; "faster" only where the interval excludes 1."""
    if runtimes is None or runtimes.empty:
        return []
    df = runtimes[runtimes["batch"] == (batch if batch in set(runtimes["batch"]) else runtimes["batch"].min())]
    lines = []
    for (a, b, prec), g in df.groupby(["backend", "other", "precision"], sort=False):
        parts = []
        for _, r in g.iterrows():
            verdict = tables.noise_label(r["ratio_low"], r["ratio_high"])
            said = {"faster": f"{a} faster", "slower": f"{b} faster"}.get(verdict, verdict)
            parts.append(f"{r['variant']} {_fmt(r['ratio'], '.2f', '×')} [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]"
                         f" ({said})")
        clock = "thread CPU time" if set(g["clock"]) == {"thread_cpu"} else "wall time"
        lines.append(f"**Which runtime is faster** ({prec}, batch {int(g['batch'].iloc[0])}, {a} / {b}, {clock}, "
                     f"timed side by side): {'; '.join(parts)}.")
    return lines


def _comparison(study: StudyData) -> pd.DataFrame:
    m = study.meta
    return tables.comparison_table(study.runs, study.latency, study.layers, study.buffer_totals,
                                   baseline=m.get("baseline", "se"), backend=m.get("backend", "ort"),
                                   precision="fp32", batch=m.get("report_batch"))


def answer_section(study: StudyData, comp: pd.DataFrame) -> Section:
    s = Section("Tiled vs global squeeze: the answer", anchor="answer")
    lines = answer_lines(comp)
    if not lines:
        s.missing = _missing(study, "runs", default="fewer than two variants were run")
        return s
    s.items += lines + runtime_lines(study.runtimes, study.meta.get("report_batch"))
    n_test = study.meta.get("test_samples")
    if n_test:
        s.items.append(f"One test image is {100.0 / n_test:.2f} pp of accuracy ({n_test} test images): smaller "
                       "differences are noise. Latencies are medians on a shared CPU; ratios matter more than ms.")
    return s


def variants_section(study: StudyData, comp: pd.DataFrame) -> Section:
    s = Section("Accuracy, latency and buffering per variant", anchor="variants")
    if comp.empty or len(comp.columns) <= 1:
        s.missing = _missing(study, "runs", default="no variant finished training")
        return s
    cols = [c for c in ("variant", "attn", "accuracy", "acc_ort_fp32", "acc_ort_int8", "int8_target", "latency_ms",
                        "latency_x", "attention_pct", "attention_buffer_elements", "attn_buffer_x", "total_buffer_elements",
                        "total_buffer_x", "params") if c in comp.columns]
    s.items.append(Table(comp[cols], "Variants (ratios to the baseline)", _headers(comp.attrs.get("baseline"))))
    if comp["accuracy"].notna().any() if "accuracy" in comp else False:
        s.items.append(FigureItem(plots.plot_tradeoff(comp), "tradeoff", "Accuracy against latency and buffering"))
    s.items += _notes(study, "runs")
    return s


def latency_section(study: StudyData) -> Section:
    s = Section("Latency per backend, precision and batch", anchor="latency")
    lat = tables.latency_table(study.latency, study.meta.get("baseline", "se"))
    if lat.empty:
        s.missing = _missing(study, "latency", default="latency was not profiled")
        return s
    if "spread" in lat:
        lat["spread"] = 100.0 * lat["spread"]
    lat["interval"] = [f"[{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else "n/a"
                       for lo, hi in zip(lat["ratio_low"], lat["ratio_high"])]
    cols = [c for c in lat.columns if c not in ("ratio_low", "ratio_high")]
    cols.insert(cols.index("ratio") + 1, cols.pop(cols.index("interval")))
    base = tables.pick_baseline(list(dict.fromkeys(lat["variant"])), study.meta.get("baseline", "se"))
    s.items.append(Table(lat[cols], "Median latency per batch; ratio to the baseline at the same backend/precision/"
                         "batch with its 95% interval (timed side by side)", {**_headers(base), **LATENCY_HEADERS}))
    s.items.append(FigureItem(plots.plot_latency_vs_batch(study.latency), "latency_vs_batch", "Latency vs batch"))
    if tables.paired_ratios(lat) and lat["ratio_low"].notna().any():
        clock = lat.get("ratio_clock", pd.Series(dtype=object))
        used = "thread CPU time (one intra-op thread)" if (clock == "thread_cpu").all() else (
            "thread CPU time where the backend runs on one thread, else wall time")
        noise = int((lat["difference"] == "within noise").sum())
        compared = int((lat["difference"] != "baseline").sum())
        s.items.append(f"The variants were timed in one process, interleaved round by round on the same input; each "
                       f"ratio is the median of the per-round ratios on {used}, with a 95% bootstrap interval. "
                       f"{noise} of {compared} ratios are within noise (their interval includes 1): no difference is "
                       "shown there.")
    else:
        s.items.append("These rows were not timed side by side: ratios are of medians, with no interval, so they "
                       "show no difference on their own (re-run python -m seadeploy.profiling latency RUN_A RUN_B).")
    if "stable" in lat and (~lat["stable"].astype(bool)).any():
        s.items.append(f"{int((~lat['stable'].astype(bool)).sum())} of {len(lat)} measurements are unstable (IQR/"
                       "median above 10 % on the clock their ratio uses): the machine was busy; the paired ratios "
                       "and their intervals account for it, absolute milliseconds do not.")
    s.items += _notes(study, "latency")
    return s


def share_section(study: StudyData) -> Section:
    s = Section("Attention share of time", anchor="attention-share")
    share = tables.attention_share_table(study.layers)
    share = share[share["blocks"] > 0] if not share.empty else share
    if share.empty:
        s.missing = _missing(study, "layers", default="no per-layer profile of a variant with attention")
        return s
    s.items.append("Share of the summed per-layer time spent in the attention blocks, split into squeeze "
                   "(reduction), excitation (MLP), gate (sigmoid) and scale (broadcast multiply).")
    s.items.append(Table(share.drop(columns=["blocks"]), "Attention share per backend", HEADERS))
    s.items.append(FigureItem(plots.plot_attention_share(share), "attention_share", "Attention share of time"))
    s.items += _notes(study, "layers")
    return s


def layers_section(study: StudyData) -> Section:
    s = Section("Per-layer latency", anchor="layers")
    df = study.layers
    if df.empty or "time_ms" not in df or df["time_ms"].notna().sum() == 0:
        s.missing = _missing(study, "layers", default="per-layer latency was not profiled")
        return s
    df = df.dropna(subset=["time_ms"])
    for (variant, backend, precision), g in df.groupby(["variant", "backend", "precision"], sort=False):
        g = g[g["batch"] == g["batch"].min()]
        name = f"layers_{variant}_{backend}_{precision}".replace("(", "_").replace(")", "").replace("=", "")
        title = f"{variant} · {backend} {precision} · batch {g['batch'].iloc[0]} · {len(g)} layers"
        s.items.append(FigureItem(plots.plot_layer_latency(g, title), name, title))
    roles = tables.role_time_table(df)
    s.items.append(Table(roles, "Time per role (ms per run, summed over layers)"))
    s.items.append(_gap_table(study, df))
    s.items += _notes(study, "layers")
    return s


def _gap_table(study: StudyData, layers: pd.DataFrame) -> Table:
    """Per-layer sum vs end-to-end: the profiler's interleaved timing when recorded, else latency.csv."""
    heads = {**HEADERS, "layers_sum_ms": "Σ layers (ms)", "run_sum_ms": "Σ layers per run (ms)",
             "end_to_end_ms": "end-to-end (ms)", "gap_pct": "gap %", "interference_pct": "interference %"}
    gaps = study.layer_gaps
    if not gaps.empty:
        cols = [c for c in ("variant", "backend", "precision", "batch", "layers", "run_sum_ms", "end_to_end_ms", "gap_pct",
                            "interference_pct") if c in gaps]
        return Table(gaps[cols], "Per-layer sum vs end-to-end median timed between the profiled runs (gap % = share "
                     "of end-to-end time the per-layer profile does not explain; interference % = preemption "
                     "by other processes)", heads)
    return Table(tables.layer_gap_table(layers, study.latency), "Per-layer sum vs the end-to-end median of "
                 "latency.csv (timed in a separate run; gap % = share of end-to-end time the per-layer profile "
                 "does not explain)", heads)


def buffers_section(study: StudyData) -> Section:
    s = Section("Dataflow buffering: global vs tiled squeeze", anchor="buffers")
    if study.buffer_totals.empty:
        s.missing = _missing(study, "buffer_blocks", default="the dataflow buffer model was not run")
        return s
    s.items.append("Row-streaming pipeline model (docs/architecture.md §5): a global squeeze holds the whole feature "
                   "map until its last row arrives; a tiled squeeze holds one band of tile rows.")
    totals = study.buffer_totals
    s.items.append(Table(totals, "Totals per variant (elements held)", HEADERS))
    blocks = tables.buffer_block_table(study.buffer_blocks, baseline=study.meta.get("baseline", "se"))
    if len(blocks.columns) > 1:
        s.items.append(Table(blocks, "Attention buffering per block (elements)"))
        s.items.append(FigureItem(plots.plot_buffer_blocks(study.buffer_blocks), "buffers_per_block",
                                  "Attention buffer per block"))
    else:
        s.items.append(f"{NOT_MEASURED}: no per-block buffer rows (no variant has attention blocks)")
    s.items += _notes(study, "buffer_blocks")
    return s


def parity_section(study: StudyData) -> Section:
    s = Section("Export precisions and parity", anchor="parity")
    if study.parity.empty:
        s.missing = _missing(study, "parity", default="validate was not run")
        return s
    par = study.parity.copy()
    for col in ("top1", "accuracy", "ref_accuracy"):
        if col in par and par[col].dropna().between(0, 1).all():
            par[col] = 100.0 * par[col]
    cols = [c for c in PARITY_COLUMNS if c in par.columns] or list(par.columns)
    s.items.append(Table(par[cols], "ONNX Runtime vs PyTorch fp32 (|a−b| ≤ atol + rtol·|ref|; top-1 = agreement %)",
                         {"top1": "top-1 agree %", "accuracy": "acc %", "ref_accuracy": "torch acc %"}))
    s.items += _notes(study, "parity")
    return s


def training_section(study: StudyData) -> Section:
    s = Section("Training", anchor="training")
    tr = study.training
    if tr.empty:
        s.missing = _missing(study, "training", default="no training history")
        return s
    last = tr.groupby("variant", sort=False).tail(1)
    cols = [c for c in ("variant", "epoch", "train_loss", "train_top1", "test_loss", "test_top1") if c in last]
    s.items.append(Table(last[cols], "Last epoch per variant"))
    if "epoch_time_s" in tr:
        s.items.append(Table(tr.groupby("variant", sort=False)["epoch_time_s"].sum().reset_index(),
                             "Training time (s)"))
    s.items += _notes(study, "training")
    return s


def method_section(study: StudyData) -> Section:
    s = Section("Method and environment", anchor="method")
    meta = {k: v for k, v in study.meta.items() if k != "versions" and v is not None}
    if meta:
        s.items.append(Table(pd.DataFrame({"setting": list(meta), "value": [str(v) for v in meta.values()]})))
    versions = study.meta.get("versions") or {}
    if versions:
        s.items.append(Table(pd.DataFrame({"library": list(versions), "version": list(versions.values())})))
    if not s.items:
        s.missing = "no settings were recorded"
    return s


STREAMING_COLUMNS = {"fps": "FPS", "initiation_interval_cycles": "II (cycles)", "bottleneck": "bottleneck",
                     "fill_latency_cycles": "fill latency (cycles)", "frame_latency_cycles": "frame latency (cycles)",
                     "no_overlap_latency_cycles": "no-overlap bound (cycles)", "fifo_elements": "zero-stall FIFOs (elem)",
                     "attention_buffer_elements": "attention buffer (elem)",
                     "attention_bypass_elements": "attention bypass FIFOs (elem)",
                     "attention_bypass_bram18": "bypass BRAM18", "attention_bypass_uram": "bypass URAM"}


def streaming_section(study: StudyData) -> Section:
    """Streaming accelerator (seadeploy/dataflow): each run's pipeline.json, written by compare's pipeline stage."""
    s = Section("Streaming accelerator: pipeline timing", anchor="streaming")
    if study.pipeline.empty:
        s.missing = "the pipeline stage was not run (python -m seadeploy.profiling pipeline RUN_DIR)"
        return s
    frame = study.pipeline
    cols = ["variant", *[c for c in STREAMING_COLUMNS if c in frame.columns]]
    table = frame[cols].copy()
    if not study.runs.empty and "accuracy" in study.runs:
        table = table.merge(study.runs[["variant", "accuracy"]], on="variant", how="left")
    first = frame.iloc[0]
    mpc, mhz = pd.to_numeric(first.get("macs_per_cycle"), errors="coerce"), pd.to_numeric(first.get("clock_mhz"), errors="coerce")
    budget = (f"per-layer folding from {first['folding']}" if isinstance(first.get("folding"), str)
              else f"{_fmt(mpc, '.0f')} MACs/cycle spread over the layers by MACs")
    if first.get("granularity") == "pixel":  # positions, FINN-style (docs/dataflow.md)
        budget = f"position streaming, FINN-style folding to {_fmt(mpc, '.0f')} MACs/cycle"
    s.items.append(f"Layer-pipelined dataflow accelerator, {budget}, {_fmt(mhz, '.0f')} MHz: a "
                   "global squeeze cannot release its scale before the last row of the map, so each SE block "
                   "delays the first output row by about a frame and needs a FIFO of the whole map.")
    s.items.append(Table(table, "Throughput, latency and FIFO storage per variant",
                         {**STREAMING_COLUMNS, "accuracy": "test acc (%)"}))
    return s


def build_sections(study: StudyData) -> list[Section]:
    """All report sections, in reading order."""
    comp = _comparison(study)
    sections = [answer_section(study, comp), variants_section(study, comp), latency_section(study), share_section(study),
            layers_section(study), buffers_section(study), parity_section(study), training_section(study),
            method_section(study)]
    streaming = streaming_section(study)
    if not streaming.missing:  # only where compare's pipeline stage wrote pipeline.json (a later, optional stage)
        sections.insert(6, streaming)
    return sections
