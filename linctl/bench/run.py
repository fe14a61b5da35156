"""Run a benchmark: the matmul rate, then every (sequence length, variant) case in its own process,
then the comparisons each row carries (speed-up, memory saving and FLOP ratio against softmax)."""

import os
import platform
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field, ValidationError

from linctl.attention import ATTENTION, AttentionConfig
from linctl.bench.case import Case, Result
from linctl.bench.measure import KeptCase, run_isolated
from linctl.bench.model import model_config
from linctl.bench.options import BenchOptions, Variant, config_variants, label_of, model_dims, variants
from linctl.bench.peers import PEER_MODELS, installed, matches, peer_label
from linctl.bench.search import largest_batch
from linctl.bench.timing import idle_cores
from linctl.config.load import validate
from linctl.runtime.device import BACKENDS, resolve_device


class Row(BaseModel):
    """One line of the report: what ran, how it went, and its comparisons."""

    label: str
    kind: str
    peer: str | None = None
    against: str | None = None  # a peer row: the label of our variant of the same configuration
    attention: dict[str, Any]  # the variant's attention config
    n: int
    batch: int
    status: str
    message: str = ""
    median_s: float | None = None  # with rounds: the median of the rounds' medians
    spread: float | None = None  # half the range of the repeat times (with rounds: of the rounds' medians)
    rounds_s: list[float] = Field(default_factory=list)  # the median seconds of each round
    tokens: int = 0
    flops: float | None = None
    peak_bytes: int | None = None
    tokens_per_s: float | None = None
    s_per_1k_steps: float | None = None  # --mode train: seconds per 1,000 steps at this batch, extrapolated
    flops_per_s: float | None = None
    matmul_fraction: float | None = None
    speedup: float | None = None  # against the first baseline (softmax with torch's SDPA), per real token
    speedup_spread: float | None = None  # with rounds: half the range of the per-round speed-ups
    speedup_eager: float | None = None  # against the materialised T×T softmax
    memory_saving: float | None = None  # peak-memory ratio, or largest-batch ratio with --max-batch
    flop_ratio: float | None = None  # softmax FLOPs per token over this row's
    vs_peer: float | None = None  # the peer's time per token over ours
    paper_speedup: float | None = None
    paper_memory_saving: float | None = None


class Report(BaseModel):
    machine: dict[str, Any]
    options: dict[str, Any]
    notes: list[str]
    rows: list[Row]


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def default_budget(device: torch.device) -> int | None:
    """On CPU, 80% of the memory available now, so a case fails cleanly before the OOM killer acts."""
    available = BACKENDS["cpu"].memory() if device.type == "cpu" else None
    return None if available is None else available * 8 // 10


def run_bench(opts: BenchOptions, on_row: Callable[[Row], None] = lambda row: None) -> Report:
    """Measure every case of ``opts``; ``on_row`` sees each row as it completes."""
    device = resolve_device(opts.device)
    budget = int(opts.memory_budget) if opts.memory_budget is not None else default_budget(device)
    threads, threads_note = threads_for(opts, device)
    common = {"device": str(device), "dtype": opts.precision, "seed": opts.seed, "threads": threads}
    dims, own_attention = model_dims(opts)
    if opts.level == "attention":
        dims = {"d_model": dims["d_model"], "n_heads": dims["n_heads"]}
    chosen = config_variants(opts) if len(opts.config) > 1 else variants(opts, own_attention)
    matmul = run_isolated(Case(what="matmul", repeats=3, **common), opts.timeout)
    rate = matmul.flops / matmul.median if matmul.status == "ok" else None  # type: ignore[operator]
    notes = peer_notes(opts, chosen) + ([threads_note] if threads_note else [])
    rounds = opts.rounds_in_force(len(chosen) + len(peer_cases(opts, chosen)))
    rows: list[Row] = []
    for n in opts.seq_len:
        planned = []
        for variant, peer in [(v, None) for v in chosen] + peer_cases(opts, chosen):
            label = peer_label(peer, variant.attention) if peer else variant.label
            model = variant.model or dims
            base = Case(
                what=opts.level, label=label, peer=peer, attention=variant.attention, model=model, n=n,
                mode=opts.mode, warmup=opts.warmup, repeats=opts.repeats, padded=opts.padded, budget=budget,
                **common,
            )  # fmt: skip
            planned.append((variant, base))
        if rounds > 1:
            rows += measure_in_rounds(opts, planned, rounds, on_row)
            continue
        for variant, base in planned:
            row = measure_row(opts, variant, base)
            rows.append(row)
            on_row(row)
    compare(rows, rate, opts, chosen[0].label if len(opts.config) > 1 else None)
    machine = {
        "device": machine_name(device), "device_type": device.type,
        "threads": threads or torch.get_num_threads(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "dtype": opts.precision,
        "matmul_flops_per_s": rate, "memory_budget_bytes": budget,
    }  # fmt: skip
    return Report(machine=machine, options=opts.model_dump(mode="json"), notes=notes, rows=rows)


def threads_for(opts: BenchOptions, device: torch.device) -> tuple[int | None, str | None]:
    """The CPU threads every case runs on, and a note when neighbours' load lowered them.

    With more runnable threads than cores, the scheduler parks some of a case's threads mid-product and
    every parallel region waits for them: many small products suffer more than a few large ones, so the
    ratios between cases would follow the neighbours. A case therefore gets the cores that are idle when
    the bench starts (at least one, at most torch's default), unless ``--threads`` says otherwise.
    """
    if opts.threads is not None or device.type != "cpu":
        return opts.threads, None
    idle = idle_cores()
    default = torch.get_num_threads()
    if idle is None or round(idle) >= default:
        return None, None
    threads = max(1, round(idle))
    return threads, (
        f"{idle:.1f} of {os.cpu_count()} cores were idle when the bench started: cases run on {threads} "
        f"thread{'s' if threads > 1 else ''} instead of {default} (--threads to choose)"
    )


def peer_notes(opts: BenchOptions, chosen: list[Variant]) -> list[str]:
    if not opts.peers:
        return []
    notes = []
    if opts.level != "model":
        notes.append("--peers compares whole models: add --level model")
    for peer in PEER_MODELS:
        if not installed(peer):
            notes.append(f"peer {peer!r} is not installed (pip install 'linctl[peers]'); skipped")
        elif not any(matches(peer, v.attention) for v in chosen):
            notes.append(f"peer {peer!r} has no variant of the same configuration here; skipped")
    return notes


def peer_cases(opts: BenchOptions, chosen: list[Variant]) -> list[tuple[Variant, str]]:
    if not opts.peers or opts.level != "model":
        return []
    return [
        (v, peer) for peer in PEER_MODELS if installed(peer) for v in chosen if matches(peer, v.attention)
    ]


def row_fields(variant: Variant, case: Case) -> dict[str, Any]:
    return {
        "label": case.label, "kind": variant.kind, "peer": case.peer, "attention": variant.attention,
        "n": case.n, "against": variant.label if case.peer else None,
    }  # fmt: skip


def skip_reason(variant: Variant, case: Case) -> str | None:
    """Why the case cannot run at its length or in its model, or None."""
    try:
        attention_config(variant.attention).check_length(case.n)
    except ValueError as err:  # the config was validated by variants(); its length limit was not
        return str(err).splitlines()[-1]
    if case.what == "model":
        try:
            model_config(case)
        except (
            ValidationError
        ) as err:  # a model that does not take this attention (a funnel's relative terms)
            return err.errors()[0]["msg"].removeprefix("Value error, ").splitlines()[0]
    return None


def measure_row(opts: BenchOptions, variant: Variant, case: Case) -> Row:
    """Find the batch (given, or the largest that fits), then time the case at that batch."""
    fields = row_fields(variant, case)
    skipped = skip_reason(variant, case)
    if skipped is not None:
        return Row(**fields, batch=0, status="skipped", message=skipped)
    batch = opts.batch_size or 1
    if opts.max_batch:

        def fits(b: int) -> bool:
            probe = case.model_copy(update={"batch": b, "warmup": 0, "repeats": 0})
            return run_isolated(probe, opts.timeout).status == "ok"

        batch = largest_batch(fits)
        if batch == 0:
            return Row(**fields, batch=0, status="oom", message="a single sequence does not fit")
    result = run_isolated(case.model_copy(update={"batch": batch}), opts.timeout)
    while opts.max_batch and result.status == "oom" and batch > 1:
        # The peak of one run differs from the search's by a page or two: at the boundary the timed run
        # can land just over the budget. The batch below it is then the largest that fits.
        batch -= 1
        result = run_isolated(case.model_copy(update={"batch": batch}), opts.timeout)
    return row_of(fields, batch, result, opts.mode)


def measure_in_rounds(
    opts: BenchOptions, planned: list[tuple[Variant, Case]], rounds: int, on_row: Callable[[Row], None]
) -> list[Row]:
    """Measure cases of one length in kept worker processes, started one after the other, then time
    them in ``rounds`` rounds of ``opts.repeats`` turns, each case once per turn."""
    rows: dict[int, Row] = {}
    kept: dict[int, KeptCase] = {}
    batch = opts.batch_size or 1
    try:
        for i, (variant, case) in enumerate(planned):
            skipped = skip_reason(variant, case)
            if skipped is not None:
                rows[i] = Row(**row_fields(variant, case), batch=0, status="skipped", message=skipped)
            else:
                kept[i] = KeptCase(case.model_copy(update={"batch": batch, "repeats": 1}), opts.timeout)
        for _ in range(rounds):
            for worker in kept.values():
                worker.start_round()
            for _ in range(opts.repeats):  # run by run, so that each round's cases see the same load
                for worker in kept.values():
                    worker.time_once()
    finally:
        for worker in kept.values():
            worker.close()
    for i, worker in kept.items():
        variant, case = planned[i]
        times = [t for round_times in worker.rounds for t in round_times]
        result = worker.result.model_copy(update={"times": times}) if worker.rounds else worker.result
        rows[i] = row_of(row_fields(variant, case), batch, result, opts.mode, worker.rounds)
    ordered = [rows[i] for i in range(len(planned))]
    for row in ordered:
        on_row(row)
    return ordered


def row_of(
    fields: dict[str, Any], batch: int, result: Result, mode: str, rounds: list[list[float]] | None = None
) -> Row:
    row = Row(**fields, batch=batch, status=result.status, message=result.message)
    if result.status != "ok":
        return row
    median, spread = result.median, result.spread
    round_medians = [statistics.median(times) for times in rounds or []]
    if round_medians:
        median = statistics.median(round_medians)
        spread = (max(round_medians) - min(round_medians)) / 2 / median
    row = row.model_copy(
        update={
            "median_s": median, "spread": spread, "rounds_s": round_medians, "tokens": result.tokens,
            "flops": result.flops, "peak_bytes": result.peak_bytes,
            "tokens_per_s": result.tokens / median, "flops_per_s": (result.flops or 0.0) / median,
        }
    )  # fmt: skip
    if mode == "train":
        row.s_per_1k_steps = 1000 * median  # a timed repeat is one training step (the efficiency test)
    return row


def compare(rows: list[Row], rate: float | None, opts: BenchOptions, reference: str | None = None) -> None:
    """Fill each row's comparisons with the baseline rows (and the peer rows) of the same n.

    The baselines are what the attention configs declare: each names the report column it is the
    reference of (softmax: ``speedup`` against SDPA, which also gives the FLOP ratio and memory saving,
    and ``speedup_eager`` against the eager T×T form). Comparing whole model configs, the first one,
    ``reference``, is the baseline instead.
    """
    baselines = {
        column: label_for({"kind": kind, **values})
        for kind in ATTENTION.kinds()
        for column, values in ATTENTION.classes[kind].Config.baselines.items()
    }
    if reference is not None:
        baselines = {"speedup": reference}
    by_n: dict[int, list[Row]] = {}
    for row in rows:
        by_n.setdefault(row.n, []).append(row)
    for row in rows:
        if row.status != "ok":
            continue
        if rate:
            row.matmul_fraction = row.flops_per_s / rate  # type: ignore[operator]
        same = {r.label: r for r in by_n[row.n] if r.status == "ok" and r.peer is None}
        reference = {column: same.get(label) for column, label in baselines.items()}
        if row.peer is None:
            for column, base in reference.items():
                if base is not None:
                    value, spread = ratio(base, row)
                    setattr(row, column, value)
                    if column == "speedup":
                        row.speedup_spread = spread
            sdpa = reference.get("speedup")
            if sdpa is not None:
                row.flop_ratio = (sdpa.flops / sdpa.tokens) / (row.flops / row.tokens)  # type: ignore[operator]
                row.memory_saving = memory_saving(sdpa, row, opts.max_batch)
            row.paper_speedup, row.paper_memory_saving = attention_config(row.attention).paper_figures(row.n)
        if row.peer is not None:
            ours = same.get(row.against or "")
            if ours is not None:
                ours.vs_peer = ratio(row, ours)[0]


def attention_config(attention: dict[str, Any]) -> AttentionConfig:
    return validate(ATTENTION.classes[attention["kind"]].Config, attention, "attention")


def label_for(attention: dict[str, Any]) -> str:
    return label_of(attention_config(attention))


def memory_saving(softmax: Row, row: Row, max_batch: bool) -> float | None:
    """The paper's measure with --max-batch (ratio of largest batches), else the peak-memory ratio."""
    if max_batch:
        return row.batch / softmax.batch
    if not softmax.peak_bytes or not row.peak_bytes:
        return None
    return softmax.peak_bytes / row.peak_bytes


def per_token(row: Row) -> float:
    return row.median_s / row.tokens  # type: ignore[operator]


def ratio(base: Row, row: Row) -> tuple[float, float | None]:
    """``base``'s time per token over ``row``'s. Timed in the same rounds, it is the median of the rounds'
    ratios, with half their range; else the ratio of the medians, and no range."""
    if not base.rounds_s or len(base.rounds_s) != len(row.rounds_s):
        return per_token(base) / per_token(row), None
    ratios = [(b / base.tokens) / (r / row.tokens) for b, r in zip(base.rounds_s, row.rounds_s, strict=True)]
    return statistics.median(ratios), (max(ratios) - min(ratios)) / 2
