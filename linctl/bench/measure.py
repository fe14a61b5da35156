"""Run one case: in this process (the worker), or in a fresh child process so cases do not pollute
each other's memory peaks and a case that dies (out of memory, killed) or hangs is reported, not fatal."""

import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from linctl.bench.attention import attention_workload
from linctl.bench.case import Case, Result
from linctl.bench.matmul import measure_matmul
from linctl.bench.model import model_workload
from linctl.bench.peers import peer_workload
from linctl.bench.timing import (
    STEADY_THRESHOLD,
    MemoryMeter,
    address_space_limit,
    mmap_threshold,
    time_repeats,
)
from linctl.bench.workload import Workload
from linctl.runtime.device import autocast
from linctl.runtime.flops import FlopCounterMode
from linctl.train.optim import OptimConfig, build_optimizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def build(case: Case, device: torch.device, dtype: torch.dtype) -> Workload:
    if case.peer is not None:
        return peer_workload(case, device, dtype)
    if case.what == "attention":
        return attention_workload(case, device, dtype)
    return model_workload(case, device, dtype)


def measure(case: Case) -> Result:
    """Build ``case`` on its device, warm it up, time its repeats and take its peak working memory."""
    if case.what == "matmul":
        return measure_matmul(case, torch.device(case.device), DTYPES[case.dtype])
    runs = measured(case)
    ready = next(runs)
    if ready.status != "ok":
        return ready
    return next(runs)


def measured(case: Case) -> Iterator[Result]:
    """Measure an attention or model ``case`` once, then time it as often as asked.

    The first result has the FLOPs, tokens and peak working memory, after the warm-up, and no times; each
    result after it (one per ``next``) has ``case.repeats`` more times. A case that cannot run yields one
    result that says why, and stops.
    """
    device = torch.device(case.device)
    dtype = DTYPES[case.dtype]
    torch.manual_seed(case.seed)
    # Inference runs in the dtype; training keeps fp32 weights under autocast, as `linctl train` does.
    weights = dtype if case.mode == "inference" else torch.float32
    work = build(case, device, weights)
    work.module.to(weights).train(case.mode == "train")
    meter = MemoryMeter(device)
    if case.mode == "inference":

        @torch.inference_mode()
        def step() -> None:
            for args, kwargs in work.batches:
                work.module(*args, **kwargs)
    else:
        optimizer = build_optimizer(work.module, OptimConfig(lr=1e-4))  # `linctl train`'s AdamW

        def step() -> None:
            for args, kwargs in work.batches:
                with autocast(device, case.dtype):
                    out = work.module(*args, **kwargs)
                work.loss(out).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    try:
        with address_space_limit(case.budget, device):
            # Two untimed runs come first. One counts the matmul FLOPs and makes the one-off allocations
            # (library workspaces, optimizer state) resident; the next is the memory run, with every
            # CPU allocation of 16 KiB or more in fresh pages so that the high-water mark is exact.
            with FlopCounterMode(display=False) as counter:
                step()
            flops = float(counter.get_total_flops())
            if device.type == "cpu":
                mmap_threshold(16 << 10)
            meter.start()
            step()
            peak = meter.peak()
            if device.type == "cpu":
                mmap_threshold(STEADY_THRESHOLD)
            ready = Result(status="ok", flops=flops, tokens=work.tokens, peak_bytes=peak)
            if case.budget is not None and peak > case.budget:
                yield ready.model_copy(
                    update={"status": "oom", "message": f"peak {peak / 2**20:,.0f} MiB is over the budget"}
                )
                return
            time_repeats(step, max(case.warmup - 2, 0), 0, device)
            yield ready
            while True:
                yield ready.model_copy(update={"times": time_repeats(step, 0, case.repeats, device)})
    except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError is a RuntimeError
        if isinstance(err, MemoryError) or any(text in str(err).lower() for text in OOM_TEXT):
            yield Result(status="oom", message=str(err).splitlines()[0][:200])
            return
        raise


def run_isolated(case: Case, timeout: float) -> Result:
    """Measure ``case`` in a fresh Python process; out-of-memory deaths and timeouts become results."""
    with tempfile.TemporaryDirectory(prefix="linctl-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "linctl.bench.worker", str(out)]
        try:
            proc = subprocess.run(
                command, input=case.model_dump_json(), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return Result(status="timeout", message=f"stopped after {timeout:g} s")
        if out.is_file():
            return Result.model_validate_json(out.read_text())
        return _worker_died(proc.returncode, proc.stderr)


def _worker_died(code: int, stderr: str) -> Result:
    """The result of a worker that ended without one: killed for memory, or failing with its last line."""
    if code == -9:
        return Result(status="oom", message="killed by SIGKILL (the kernel's out-of-memory killer)")
    lines = stderr.strip().splitlines()
    return Result(status="error", message=lines[-1] if lines else f"worker exit {code}")


class KeptCase:
    """A case in a worker process kept for a whole benchmark: built and measured once when started, then
    timed run by run (``time_once``), so that the kept cases take turns and drift or a neighbour's load
    falls on all of them alike. The case's ``repeats`` is what one turn times: 1 for turns run by run."""

    def __init__(self, case: Case, timeout: float) -> None:
        self.timeout = timeout
        self.rounds: list[list[float]] = []  # the times of each round
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the worker's lifetime; close())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "linctl.bench.worker", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )  # fmt: skip
        self.result = self._ask(case.model_dump_json())  # FLOPs, tokens and peak; no times

    def start_round(self) -> None:
        if self.result.status == "ok":
            self.rounds.append([])

    def time_once(self) -> None:
        """Time one turn of the case into the current round; a case that failed before is left alone."""
        if self.result.status != "ok":
            return
        reply = self._ask("")
        if reply.status == "ok":
            self.rounds[-1] += reply.times
        else:
            self.result = reply
            self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]  # the worker stops at the end of its input
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()

    def _ask(self, line: str) -> Result:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(line + "\n")
            stdin.flush()
        except BrokenPipeError:
            return self._died()
        if not select.select([stdout], [], [], self.timeout)[0]:
            self._proc.kill()
            self._proc.wait()
            return Result(status="timeout", message=f"stopped after {self.timeout:g} s")
        reply = stdout.readline()
        return Result.model_validate_json(reply) if reply else self._died()

    def _died(self) -> Result:
        code = self._proc.wait()
        self._stderr.seek(0)
        return _worker_died(code, self._stderr.read())
