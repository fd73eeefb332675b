"""``optinv batch`` across processes: ranks under ``torchrun`` (rendezvous with a timeout, sums,
barriers, shared objects), the device of each rank, and the stop flag a signal sets."""

from __future__ import annotations

import math
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from optinv.engine import jobs
from optinv.errors import OptinvError
from optinv.io.fileio import first_line

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")


# ------------------------------------------------------------------------- ranks and devices
@dataclass
class Ranks:
    """Where this process stands among the torchrun workers (a lone process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int | None = None
    active: bool = False                       # collectives go through torch.distributed
    owns_group: bool = False                   # we initialised it, so we destroy it
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def sum(self, values: list[int]) -> list[int]:
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64, device=self.comm_device)
        dist.all_reduce(t)
        return [int(v) for v in t.tolist()]

    def barrier(self) -> None:
        """An all-reduce rather than dist.barrier(): NCCL's barrier has to guess the device."""
        self.sum([0])

    def share(self, obj: Any) -> Any:
        """Rank 0's object, on every rank."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.comm_device)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = self.active = False


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in TORCHRUN_ENV)


RENDEZVOUS_ENV = "OPTINV_RENDEZVOUS_SECONDS"


def rendezvous_seconds() -> float:
    """How long a rank waits for the others (``$OPTINV_RENDEZVOUS_SECONDS``, default 300)."""
    raw = os.environ.get(RENDEZVOUS_ENV, "300")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise OptinvError(f"{RENDEZVOUS_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


def check_torchrun_env() -> None:
    """RANK, WORLD_SIZE and LOCAL_RANK are integers with 0 ≤ RANK < WORLD_SIZE and 0 ≤ LOCAL_RANK:
    a rank outside the world would wait for a group it can never join."""
    values = {}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = os.environ.get(key, "")
        try:
            values[key] = int(raw)
        except ValueError:
            raise OptinvError(f"{key} must be an integer, got {raw!r} (torchrun sets it)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world:
        raise OptinvError(f"RANK {rank} does not lie in 0..WORLD_SIZE-1 (WORLD_SIZE {world}): start the ranks "
                          f"with torchrun")
    if not 0 <= local <= rank:
        raise OptinvError(f"LOCAL_RANK {local} must lie in 0..RANK ({rank})")


def pick_device(name: str | None, local_rank: int | None) -> torch.device:
    """The job's device; under torchrun each rank takes GPU number LOCAL_RANK."""
    dev = jobs.resolve_device(name)
    if dev.type != "cuda" or local_rank is None:
        return dev
    if local_rank >= torch.cuda.device_count():
        raise OptinvError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
                          f"start at most that many processes per node")
    dev = torch.device("cuda", local_rank)
    torch.cuda.set_device(dev)
    return dev


def _rendezvous(backend: str, seconds: float, flag: "StopFlag | None") -> None:
    """``init_process_group`` on a helper thread while this one watches for SIGINT/SIGTERM: the
    C++ wait for the other ranks would otherwise hold the signals until it gives up."""
    import datetime

    import torch.distributed as dist

    failed: list[BaseException] = []

    def run() -> None:
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
        except BaseException as e:  # noqa: BLE001  (handed to the waiting thread)
            failed.append(e)

    waiter = threading.Thread(target=run, name="optinv-rendezvous", daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(0.1)
        if flag is not None and flag.signum is not None:
            raise OptinvError(f"stopped by {signal.Signals(flag.signum).name} while waiting for the other ranks")
    if failed:
        e = failed[0]
        if isinstance(e, (RuntimeError, ValueError)):  # torch's DistStoreError is a RuntimeError
            raise OptinvError(f"the other ranks did not join within {seconds:g} s (WORLD_SIZE "
                              f"{os.environ['WORLD_SIZE']}, MASTER_ADDR {os.environ['MASTER_ADDR']}): start every "
                              f"rank with torchrun, or set {RENDEZVOUS_ENV} ({first_line(e, 120)})") from None
        raise e


def join_ranks(device: torch.device, flag: "StopFlag | None" = None) -> Ranks:
    """Join the torchrun process group (NCCL for CUDA, gloo otherwise), or stay alone; a signal
    while waiting for the other ranks stops the run in one line."""
    if not launched_by_torchrun():
        return Ranks()
    import torch.distributed as dist

    check_torchrun_env()
    owns = False
    if not dist.is_initialized():
        _rendezvous("nccl" if device.type == "cuda" else "gloo", rendezvous_seconds(), flag)
        owns = True
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ["LOCAL_RANK"]),
                 active=True, owns_group=owns, comm_device=comm)


# ------------------------------------------------------------------------------------ signals
class StopFlag:
    """SIGINT/SIGTERM only set a flag: a batch cannot be stopped midway without losing it, so
    the run stops after the batch in flight. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


