"""Where a training process runs: its data-parallel rank (under ``torchrun``) and its torch device."""

from __future__ import annotations

import atexit
import logging
import os
import sys

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def init_distributed() -> tuple[int, int, int]:
    """``(rank, world, local_rank)``; joins the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        # leave the group before the interpreter exits: a gloo group torn down by the exit itself aborted one rank
        # now and then ("terminate called without an active exception", SIGABRT) after its work was done
        atexit.register(_leave_group)
        log.info("data parallel: rank %d of %d (%s)", rank, world, backend)
    return rank, world, local_rank


def _leave_group() -> None:
    """Every rank leaves together: a rank that tore its gloo group down while another still worked (rank 0
    writes the model dirs) aborted the same way, so a barrier comes first."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def exit_distributed(rc: int) -> int:
    """The end of a command: ``rc`` back when no process group was joined. A torchrun worker leaves the group with
    the other ranks, flushes its logs and ends at once with ``os._exit(rc)``: after a clean barrier and
    ``destroy_process_group`` a gloo rank still aborted in the interpreter's own finalisation now and then
    ("terminate called without an active exception", no Python frame; 3 runs in 60 on 2 busy cores), and torchrun
    then failed the whole job although every rank had finished. Everything a stage writes is closed and renamed
    before its command returns, so nothing is lost by skipping the finalisation."""
    if not dist.is_initialized():
        return rc
    _leave_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the rank's GPU when there is one, else the CPU; ``cuda`` / ``cuda:N`` / ``cpu`` as given."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but no CUDA device is available")
        device = torch.device("cuda", local_rank) if spec == "cuda" else torch.device(spec)
        torch.cuda.set_device(device)  # NCCL and the default CUDA stream follow the rank's device
        return device
    return torch.device(spec)
