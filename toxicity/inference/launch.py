"""What the launcher says about this process: Lightning's own launcher (--devices, --num-nodes), torchrun
or SLURM (srun/sbatch), or RANK and WORLD_SIZE set by hand; which chunks each rank owns; and the default
precision of a run on a given accelerator (the same rule for training and for scoring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def default_precision(accelerator: object) -> str:
    """bf16 mixed precision on a GPU that has it (half the memory traffic; scores move by ~1e-2 at most),
    else full float32 (a V100 too: float16 is not picked by default). `auto` means the GPU when there is
    one."""
    import torch

    on_gpu = str(accelerator) in ("auto", "gpu", "cuda")
    if on_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def launcher_shape(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """(processes per node, nodes) set by torchrun or SLURM (sbatch/srun), or None when neither started us."""
    if "LOCAL_WORLD_SIZE" in environ and "WORLD_SIZE" in environ:  # torchrun / torchelastic
        local = int(environ["LOCAL_WORLD_SIZE"])
        return local, max(1, int(environ["WORLD_SIZE"]) // local)
    if "SLURM_NTASKS_PER_NODE" in environ and "SLURM_NNODES" in environ:
        return int(environ["SLURM_NTASKS_PER_NODE"].split("(")[0]), int(environ["SLURM_NNODES"])
    return None


def devices_and_nodes(
    devices: int | None, num_nodes: int | None, environ: Mapping[str, str]
) -> tuple[int, int]:
    """(processes per node, nodes) for Lightning: as given, else the launcher's, else one process."""
    shape = launcher_shape(environ) or (1, 1)
    return devices or shape[0], num_nodes or shape[1]


def process_rank(environ: Mapping[str, str]) -> tuple[int, int]:
    """(rank, world size) of a process started by torchrun (RANK, WORLD_SIZE) or srun (SLURM_PROCID,
    SLURM_NTASKS), or set by hand; (0, 1) when none is set."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return int(environ["RANK"]), int(environ["WORLD_SIZE"])
    if "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
        return int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
    return 0, 1


def cpu_threads(environ: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS when set (a process of several on one machine takes its share of the cores)."""
    return int(environ["OMP_NUM_THREADS"]) if environ.get("OMP_NUM_THREADS") else None


@dataclass(frozen=True)
class RankShare:
    """The chunks one rank scores: chunk k belongs to rank k % world_size, whatever launched the ranks,
    and is scored unless an earlier run finished it (`done`)."""

    rank: int
    world_size: int
    done: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"rank {self.rank} is outside a world of {self.world_size} processes (RANK, WORLD_SIZE)."
            )

    def owns(self, chunk: int) -> bool:
        return chunk % self.world_size == self.rank and chunk not in self.done
