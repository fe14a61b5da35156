"""How `linctl bench` turns cases into rows: skipped lengths, the max-batch search, the comparisons with
softmax, the paper's figures and the notes — with hand-made measurements instead of worker processes."""

import pytest

from linctl.bench.case import Case, Result
from linctl.bench.options import BenchOptions
from linctl.bench.run import run_bench

RATE = 2e9  # the fake machine's matmul FLOP/s
LOAD = [1.0, 3.0, 1.5, 1.0, 2.0]  # how much slower every case runs in each round of kept workers
TURNS: list[str] = []  # the kept cases' turns, in the order they ran
IDLE = 64.0  # cores idle when the bench starts: more than torch uses
SPIKES: dict[tuple[str, int], float] = {}  # (label, round): how much slower one case runs in one round
# Per variant: seconds per repeat, FLOPs per token, peak bytes per sequence, largest batch that fits.
COSTS = {
    "softmax impl=sdpa": (0.2, 100.0, 1000, 3),
    "softmax impl=eager": (0.4, 100.0, 4000, 1),
    "linformer k=128 sharing=layerwise": (0.1, 40.0, 250, 12),
    "primal rank=30 rank_multi=10 ksvd_weight=0.1": (0.15, 60.0, 500, 6),  # bench builds it with defaults
}


@pytest.fixture
def cases(monkeypatch) -> list[Case]:
    """Replace the worker processes by COSTS; return the cases run, in order."""
    seen: list[Case] = []

    def run_isolated(case: Case, timeout: float) -> Result:
        seen.append(case)
        if case.what == "matmul":
            return Result(status="ok", times=[0.5], flops=RATE * 0.5)
        seconds, flops, peak, fits = COSTS[case.label]
        if case.batch > fits:
            return Result(status="oom", message="over the budget")
        tokens = case.n * case.batch
        return Result(status="ok", times=[seconds] * 3, flops=flops * tokens, tokens=tokens, peak_bytes=peak)

    class KeptCase:
        """A kept worker: each round a neighbour's load (LOAD) slows every case alike."""

        def __init__(self, case: Case, timeout: float) -> None:
            seen.append(case)
            self.case, self.rounds = case, []
            _, flops, peak, _ = COSTS[case.label]
            tokens = case.n * case.batch
            self.result = Result(status="ok", flops=flops * tokens, tokens=tokens, peak_bytes=peak)

        def start_round(self) -> None:
            self.rounds.append([])

        def time_once(self) -> None:
            assert self.case.repeats == 1  # kept cases take turns run by run
            TURNS.append(self.case.label)
            r = len(self.rounds) - 1
            seconds = COSTS[self.case.label][0] * LOAD[r] * SPIKES.get((self.case.label, r), 1.0)
            self.rounds[-1].append(seconds)

        def close(self) -> None:
            pass

    monkeypatch.setattr("linctl.bench.run.run_isolated", run_isolated)
    monkeypatch.setattr("linctl.bench.run.idle_cores", lambda: IDLE)
    TURNS.clear()
    monkeypatch.setattr("linctl.bench.run.KeptCase", KeptCase)
    return seen


def bench(**options) -> dict[tuple[str, int], dict]:
    opts = BenchOptions(preset="small", k=[128], repeats=3, device="cpu", **options)
    return {(row.label, row.n): row.model_dump() for row in run_bench(opts).rows}


def test_rows_compare_per_token_with_softmax_of_the_same_length(cases):
    rows = bench(seq_len=[64, 512], rounds=1)
    assert list(rows) == [(label, n) for n in (64, 512) for label in COSTS]
    short = rows["linformer k=128 sharing=layerwise", 64]  # k > n: not measured, and said why
    assert short["status"] == "skipped" and "k (128)" in short["message"] and short["median_s"] is None
    assert [c.label for c in cases if c.n == 64] == [label for label in COSTS if label != short["label"]]
    base, lin = rows["softmax impl=sdpa", 512], rows["linformer k=128 sharing=layerwise", 512]
    assert base["speedup"] == base["flop_ratio"] == base["memory_saving"] == 1.0
    assert lin["speedup"] == pytest.approx(2.0) and lin["speedup_eager"] == pytest.approx(4.0)
    assert lin["flop_ratio"] == pytest.approx(2.5) and lin["memory_saving"] == pytest.approx(4.0)
    assert lin["tokens_per_s"] == pytest.approx(512 / 0.1)
    assert lin["matmul_fraction"] == pytest.approx(40.0 * 512 / 0.1 / RATE)
    assert (lin["paper_speedup"], lin["paper_memory_saving"]) == (1.5, 1.7)  # the paper's n 512, k 128
    assert base["paper_speedup"] is None and rows["linformer k=128 sharing=layerwise", 64]["speedup"] is None


def test_rounds_time_every_kept_case_in_turn_and_compare_round_by_round(monkeypatch, cases):
    rows = bench(seq_len=[512])  # several cases: ROUNDS rounds by default
    assert [c.label for c in cases if c.what != "matmul"] == list(COSTS)  # one worker per case
    base, lin = rows["softmax impl=sdpa", 512], rows["linformer k=128 sharing=layerwise", 512]
    assert base["rounds_s"] == pytest.approx([0.2 * load for load in LOAD])
    assert base["median_s"] == pytest.approx(0.2 * 1.5) and base["spread"] == pytest.approx(1.0 / 1.5)
    assert lin["speedup"] == pytest.approx(2.0) and lin["speedup_spread"] == pytest.approx(0.0)
    assert lin["tokens_per_s"] == pytest.approx(512 / (0.1 * 1.5))


def test_kept_cases_take_turns_run_by_run_within_each_round(cases):
    rows = bench(seq_len=[512])
    assert list(COSTS) * 3 * 5 == TURNS  # 5 rounds of 3 repeats, every case once per turn
    assert rows["softmax impl=sdpa", 512]["rounds_s"] == pytest.approx([0.2 * load for load in LOAD])


def test_cases_run_on_the_idle_cores_unless_threads_are_given(monkeypatch, cases):
    monkeypatch.setattr("linctl.bench.run.idle_cores", lambda: 0.2)  # neighbours keep every core busy
    monkeypatch.setattr("linctl.bench.run.torch.get_num_threads", lambda: 2)
    opts = BenchOptions(preset="small", k=[128], repeats=3, device="cpu", seq_len=[512], rounds=1)
    report = run_bench(opts)
    assert {c.threads for c in cases} == {1} and report.machine["threads"] == 1
    assert any("0.2 of" in note and "1 thread instead of 2" in note for note in report.notes)
    cases.clear()
    report = run_bench(opts.model_copy(update={"threads": 2}))
    assert {c.threads for c in cases} == {2} and not any("idle" in note for note in report.notes)
    monkeypatch.setattr("linctl.bench.run.idle_cores", lambda: 1.8)  # idle enough: torch's default
    cases.clear()
    report = run_bench(opts)
    assert {c.threads for c in cases} == {None} and report.machine["threads"] == 2


def test_a_slow_round_of_one_case_moves_its_speedup_little_and_shows_in_the_spread(monkeypatch, cases):
    lin = "linformer k=128 sharing=layerwise"
    monkeypatch.setitem(SPIKES, (lin, 3), 3.0)  # round 4: linformer alone runs 3× slower
    row = bench(seq_len=[512])[lin, 512]
    assert row["rounds_s"] == pytest.approx([0.1, 0.3, 0.15, 0.3, 0.2])
    # the per-round ratios are 2, 2, 2, 2/3, 2: their median holds; the ratio of medians (0.3 / 0.2) would not
    assert row["speedup"] == pytest.approx(2.0) and row["speedup_spread"] == pytest.approx((2 - 2 / 3) / 2)


def test_one_round_or_max_batch_runs_each_case_in_a_fresh_process(cases):
    rows = bench(seq_len=[512], rounds=1)
    assert rows["linformer k=128 sharing=layerwise", 512]["rounds_s"] == []
    assert rows["linformer k=128 sharing=layerwise", 512]["speedup"] == pytest.approx(2.0)
    assert rows["linformer k=128 sharing=layerwise", 512]["speedup_spread"] is None
    with pytest.raises(ValueError, match="drop --rounds"):
        BenchOptions(max_batch=True, rounds=3)


def test_max_batch_times_the_largest_batch_that_fits_and_compares_batches(cases):
    rows = bench(seq_len=[512], max_batch=True)
    assert {label: rows[label, 512]["batch"] for label in COSTS} == {
        label: c[3] for label, c in COSTS.items()
    }
    assert rows["linformer k=128 sharing=layerwise", 512]["memory_saving"] == pytest.approx(12 / 3)
    probes = [c for c in cases if c.label == "linformer k=128 sharing=layerwise"]
    assert all((c.warmup, c.repeats) == (0, 0) for c in probes[:-1])  # probes are not timed…
    assert (probes[-1].batch, probes[-1].repeats) == (12, 3)  # …the batch found is


def test_max_batch_when_a_single_sequence_does_not_fit(monkeypatch, cases):
    monkeypatch.setitem(COSTS, "softmax impl=eager", (0.4, 100.0, 4000, 0))
    row = bench(seq_len=[512], max_batch=True, attention=["softmax impl=eager"])["softmax impl=eager", 512]
    assert (row["status"], row["batch"], row["message"]) == ("oom", 0, "a single sequence does not fit")
    assert [c.batch for c in cases if c.what != "matmul"] == [1]


def test_peers_outside_the_model_level_are_a_note_not_a_case(cases):
    opts = BenchOptions(preset="small", k=[128], seq_len=[512], peers=True, device="cpu")
    report = run_bench(opts)
    assert "--peers compares whole models: add --level model" in report.notes
    assert all(row.peer is None for row in report.rows) and all(c.peer is None for c in cases)


def test_several_model_configs_are_whole_model_variants_against_the_first(cases):
    lm = "configs/lm"
    opts = BenchOptions(
        level="model", mode="train", config=f"{lm}/wt2-transformer.yaml,{lm}/wt2-primal.yaml",
        seq_len=[128], batch_size=16, repeats=3, device="cpu",
    )  # fmt: skip
    COSTS.update({"wt2-transformer": (0.8, 100.0, 4000, 99), "wt2-primal": (0.6, 90.0, 3000, 99)})
    try:
        report = run_bench(opts)
    finally:
        del COSTS["wt2-transformer"], COSTS["wt2-primal"]
    rows = {row.label: row for row in report.rows}
    assert list(rows) == ["wt2-transformer", "wt2-primal"]
    measured = [c for c in cases if c.what == "model"]
    assert [c.model["layers"] for c in measured] == [{}, {3: measured[1].model["layers"][3]}]
    assert measured[1].model["layers"][3]["kind"] == "primal" and measured[0].attention["kind"] == "softmax"
    assert all(c.batch == 16 and c.mode == "train" for c in measured)
    assert rows["wt2-transformer"].speedup == 1.0 and rows["wt2-primal"].speedup == pytest.approx(0.8 / 0.6)
    assert rows["wt2-primal"].memory_saving == pytest.approx(4000 / 3000)
    assert rows["wt2-primal"].s_per_1k_steps == pytest.approx(600.0 * 1.5)  # a repeat is a step; median load


def test_several_model_configs_need_the_model_level():
    with pytest.raises(ValueError, match="add --level model"):
        BenchOptions(config="configs/lm/wt2-transformer.yaml,configs/lm/wt2-primal.yaml")


def test_a_funnel_preset_runs_the_attention_kinds_it_takes_and_skips_the_others(cases):
    opts = BenchOptions(preset="funnel-b6-6-6", level="model", k=[128], seq_len=[64, 512], max_batch=True,
                        repeats=3, device="cpu")  # fmt: skip
    rows = {(row.label, row.n): row for row in run_bench(opts).rows}
    for n in (64, 512):
        assert rows["softmax impl=sdpa", n].status == "ok" and rows["softmax impl=sdpa", n].batch == 3
        for label in ("linformer k=128 sharing=layerwise", "primal rank=30 rank_multi=10 ksvd_weight=0.1"):
            assert rows[label, n].status == "skipped"
        assert "relative-position scores" in rows["primal rank=30 rank_multi=10 ksvd_weight=0.1", n].message
    assert {case.label for case in cases if case.what == "model"} == {
        "softmax impl=sdpa",
        "softmax impl=eager",
    }
    model = next(case.model for case in cases if case.what == "model")
    assert model["kind"] == "funnel-classifier" and model["block_sizes"] == "6_6_6"
