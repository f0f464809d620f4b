"""Data-parallel training on PyTorch's own engine: `torch.distributed` started by `torchrun`.

    torchrun --nproc_per_node 2 -m vaekit train --config configs/mnist.toml --out runs/mnist

`torchrun` starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE (and the rendezvous address) in each
one's environment; `Cluster.from_environment` reads them, and `fit` then trains with DistributedDataParallel:
gloo on CPU, NCCL on CUDA devices, chosen from the training device. A plain `vaekit train` (no torchrun) is a
cluster of one process, and nothing here does anything.

How the work is shared. Every process holds the same model and reads the same seeded permutation of the epoch;
each global batch of `train.batch_size` examples is cut into `world` nearly equal contiguous shards
(`shard_rows`), process r taking shard r. Each process's loss is its shard's mean, weighted by
world * n_r / n (n_r its rows, n the batch's), so that DDP's gradient average over processes equals the gradient
of the global batch's mean: a batch size that the world size does not divide, or the short last batch, needs no
special case. A process whose shard is empty (a batch smaller than the world) runs one row with weight 0, so that
it still takes part in the gradient all-reduce.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

from ..errors import ConfigError, PeerError, TrainingError, VaekitError

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a collective may wait for the other processes by default (train.peer_timeout; a process that died is
# noticed sooner, by the connection closing).
TIMEOUT = datetime.timedelta(minutes=30)


def peer_failure(error: BaseException, rank: int) -> TrainingError | None:
    """The one-line TrainingError (each survivor prints it) for a failed collective (a peer that died or froze: torch.distributed's errors, or
    gloo's RuntimeErrors), None for any other error."""
    import torch.distributed as dist

    text = str(error)
    lost = isinstance(error, getattr(dist, "DistError", ())) or (
        isinstance(error, RuntimeError) and any(word in text for word in ("gloo", "Connection closed by peer",
                                                                          "NCCL", "Timed out", "timed out")))
    if not lost:
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return TrainingError(f"process {rank} lost the other processes of the torchrun job (one stopped, was killed or "
                     f"froze past train.peer_timeout): {first[:200]}")


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes: `rank` of `world`, `local_rank` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "Cluster":
        """The cluster torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; one process without them."""
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
        values = {name: os.environ.get(name) for name in names}
        if values["WORLD_SIZE"] is None:
            return cls()
        try:
            rank, world = int(values["RANK"]), int(values["WORLD_SIZE"])
            local_rank = int(values["LOCAL_RANK"] or 0)
        except (TypeError, ValueError):
            raise ConfigError(f"torchrun's environment is not readable: {values}") from None
        if not (world >= 1 and 0 <= rank < world and local_rank >= 0):
            raise ConfigError(f"torchrun's environment is inconsistent: {values}")
        return cls(rank, world, local_rank)

    @property
    def distributed(self) -> bool:
        """True with more than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """True for the one process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    def device(self, device: str) -> torch.device:
        """The training device of this process: with several processes on CUDA, its own GPU (cuda:LOCAL_RANK)."""
        device = torch.device(device)
        if self.distributed and device.type == "cuda" and device.index is None:
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ConfigError(f"process {self.rank} is local process {self.local_rank} of its machine, which "
                                  f"has {count} CUDA device(s): start at most {count} processes per machine "
                                  "(torchrun --nproc_per_node)")
            return torch.device("cuda", self.local_rank)
        return device

    @contextlib.contextmanager
    def session(self, device: torch.device, timeout: datetime.timedelta = TIMEOUT) -> Iterator["Cluster"]:
        """Joins the process group for the block (gloo on CPU, NCCL on CUDA; a collective waits `timeout` for
        the others) when there are several processes and none is joined yet; leaves it afterwards. A collective
        that fails because a peer died or froze ends the block in one line (a PeerError), not gloo's traceback."""
        import torch.distributed as dist

        started = False
        if self.distributed and not dist.is_initialized():
            if not dist.is_available():
                raise ConfigError("this torch build has no torch.distributed, which torchrun training needs")
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend, timeout=timeout)
            started = True
            log.info("process %d of %d joined the %s process group", self.rank, self.world, backend)
        try:
            yield self
        except (RuntimeError, OSError) as error:
            lost = peer_failure(error, self.rank) if self.distributed else None
            if lost is None:
                raise
            raise lost from None
        finally:
            if started:
                try:
                    dist.destroy_process_group()
                except (RuntimeError, OSError):  # a group whose peers are gone may not shut down cleanly
                    pass

    # --- collectives (each is a no-op for one process) -----------------------------------------------------

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of `values` over the processes (in place, and returned)."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when `flag` is True on any."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        return bool(self.all_sum(value).item() > 0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every process (any picklable value; small messages only)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def from_main(self, work: Callable[[], T]) -> T:
        """Runs `work` on rank 0 and gives its result to every process; an error there (a VaekitError, with its
        one-line message) is raised on every process, so that none waits for a rank 0 that gave up."""
        if not self.distributed:
            return work()
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, work())
            except VaekitError as error:
                outcome = (False, (type(error), str(error)))
        ok, payload = self.broadcast(outcome)
        if ok:
            return payload
        kind, message = payload
        if self.is_main:
            raise kind(message)
        raise PeerError(f"(process {self.rank}) rank 0 stopped: {message}")

    def together(self, work: Callable[[], T]) -> T:
        """Runs `work` on every process; when it fails on any (a VaekitError), the lowest failing rank raises its
        error and the others a PeerError, so that the message is printed once and no process waits for one
        that gave up."""
        if not self.distributed:
            return work()
        import torch.distributed as dist

        result, failure = None, None
        try:
            result = work()
        except VaekitError as error:
            failure = error
        outcomes: list = [None] * self.world
        dist.all_gather_object(outcomes, None if failure is None else str(failure))
        failed = [rank for rank, message in enumerate(outcomes) if message is not None]
        if not failed:
            return result
        if failed[0] == self.rank:
            raise failure
        raise PeerError(f"(process {self.rank}) process {failed[0]} stopped: {outcomes[failed[0]]}")

    def fail(self, error: VaekitError) -> None:
        """Raises `error` on rank 0 and a PeerError on the others (for an error every process found at once)."""
        if self.is_main:
            raise error
        raise PeerError(f"(process {self.rank}) {error}")

    def barrier(self) -> None:
        """Waits for every process."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def shard_rows(rows: int, cluster: Cluster) -> tuple[int, int]:
    """[start, stop) of this process's contiguous share of `rows` rows: sizes differ by at most one, the first
    `rows % world` processes taking one more (torch.tensor_split's rule)."""
    base, extra = divmod(rows, cluster.world)
    start = cluster.rank * base + min(cluster.rank, extra)
    return start, start + base + (1 if cluster.rank < extra else 0)


def check_shareable(n_train: int, batch_size: int, cluster: Cluster) -> None:
    """A ConfigError when there are fewer training examples, or fewer examples in a batch, than processes."""
    if cluster.world > n_train:
        raise ConfigError(f"{cluster.world} processes cannot share {n_train} training example(s): start at most "
                          f"{n_train} (torchrun --nproc_per_node)")
    if cluster.world > batch_size:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch, shared by the {cluster.world} "
                          f"processes: it must be at least {cluster.world}")
