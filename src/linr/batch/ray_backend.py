"""The Ray backend (``--backend ray``, extra ``linr[ray]``): each image (or stack of images,
``--stack``) is one Ray task; for ``linr restore``, each batch of one image's tiles.

Tasks receive the observations as arrays and return the restored image, so the cluster needs no
shared file system: the driver reads the inputs, writes the outputs
and keeps the manifest, exactly as with the local backend. Each task requests
``cpus_per_task`` CPUs and, when the cluster has GPUs and the device allows it, a fraction
``gpus_per_task`` of a GPU, so that several small fits share one GPU. linr's own code travels
with the tasks (a Ray ``runtime_env``), so nodes need only its dependencies (torch, numpy, ...).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from .work import BackendLost, fit_group

__all__ = ["RayBackend", "ray_unavailable"]


def ray_unavailable() -> str | None:
    """Why Ray cannot be used here, or None when it can."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        return f"Ray is not installed ({exc}); install it with: pip install 'linr[ray]'"
    return None


REACH_TIMEOUT_S = 5.0
"""Seconds a Ray cluster's address is given to answer before a batch says it cannot be reached (Ray
itself retried for minutes, printing its own warnings)."""


def _check_reachable(address: str) -> None:
    """A one-line error where nothing answers at a Ray address HOST:PORT (or ray://HOST:PORT)."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): is it running "
                         "(ray start --head), and is that its address?") from None


class RayBackend:
    """Connects to the cluster at ``address`` (None: start a local Ray instance with ``num_cpus``).

    ``device`` is auto, cpu or cuda (Ray assigns GPUs, so there is no cuda:N). ``task`` is what
    each Ray task runs (see :mod:`linr.batch.local`).
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None,
        device: str,
        cpus_per_task: float,
        gpus_per_task: float,
        num_cpus: int | None = None,
        task: Callable[[Any], Any] = fit_group,
    ):
        reason = ray_unavailable()
        if reason is not None:
            raise InputError(reason)
        import ray

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started and address not in (None, "auto", "local"):
            _check_reachable(address)
        if self._started:
            # Ship this linr's code with the job: nodes need its dependencies (torch, numpy, ...)
            # but not linr itself, and never run another version of it than the driver.
            package = str(Path(__file__).resolve().parents[1])
            try:
                ray.init(address=address, num_cpus=None if address else num_cpus,
                         runtime_env={"py_modules": [package]}, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            except ConnectionError as exc:
                raise InputError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0.0)
        if device == "cuda" and gpus == 0:
            raise InputError("--device cuda: the Ray cluster has no GPUs")
        use_gpu = gpus > 0 and device in ("auto", "cuda")
        if not use_gpu and cpus_per_task > resources.get("CPU", 0.0) and address in (None, "local"):
            ray.shutdown()  # a cluster this batch started cannot grow (one joined may autoscale)
            raise InputError(f"--ray-cpus-per-task {cpus_per_task:g}: the Ray cluster has {resources.get('CPU', 0.0):g} "
                             "CPUs in all, so no task could ever start (its tasks waited unsaid)")
        # Inside a GPU task Ray sets CUDA_VISIBLE_DEVICES, so 'cuda' is the GPU it assigned.
        self.device = "cuda" if use_gpu else "cpu"
        self.threads = max(1, int(cpus_per_task))
        options: dict[str, Any] = {"num_cpus": cpus_per_task, "max_retries": 0}
        if use_gpu:
            options["num_gpus"] = gpus_per_task
            slots = math.floor(gpus / gpus_per_task)
        else:
            slots = math.floor(resources.get("CPU", 1.0) / cpus_per_task)
        # A little more than the cluster runs at once keeps it busy while results are written;
        # everything submitted is 'in flight' and would be redone after an interruption.
        self.slots = max(1, slots) + max(1, slots // 4)
        self._options = options
        self._remote = ray.remote(**options)(task)
        self._pending: set[Any] = set()

    def idle(self) -> None:
        """Nothing to release: Ray's workers serve whatever task asks for their resources."""

    def with_task(self, task: Callable[[Any], Any]) -> RayBackend:
        """A backend on the same connection, with the same resources per task, running ``task``
        (such as the tiles of one image); closing it leaves the connection open."""
        sibling = copy.copy(self)
        sibling._remote = self._ray.remote(**self._options)(task)
        sibling._pending = set()
        sibling._started = False
        return sibling

    def submit(self, group: Any) -> Any:
        ref = self._remote.remote(group)
        self._pending.add(ref)
        return ref

    def wait(self, handles: Sequence[Any]) -> list[tuple[Any, Any]]:
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        results = []
        for ref in ready:
            self._pending.discard(ref)
            try:
                results.append((ref, self._ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - a dead worker fails one image; a lost cluster the run
                message = " ".join(f"{exc.__class__.__name__}: {exc}".split())[:300]
                if self._cluster_lost(exc):
                    raise BackendLost(f"the Ray cluster was lost ({message[:160]}); finished images are kept: "
                                      "rerun the command once it is back") from None
                results.append((ref, {"error": f"Ray task failed ({message})"}))
        return results

    def _cluster_lost(self, exc: Exception) -> bool:
        """Whether a task's failure is the cluster's (no node of it is alive, or the driver can no
        longer reach it), not the task's own."""
        try:  # one node of several lost (a preempted worker) fails its task only
            return not any(node.get("Alive") for node in self._ray.nodes())
        except Exception:  # noqa: BLE001 - the cluster cannot be asked: gone
            return True

    def cancel(self, handles: Sequence[Any]) -> None:
        """Stop these tasks, queued or running on the cluster."""
        for ref in list(handles):
            self._pending.discard(ref)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or the cluster is gone
                pass

    def close(self, *, abort: bool) -> None:
        if abort:  # what is queued or running on the cluster; its images are redone on resume
            self.cancel(list(self._pending))
        self._pending.clear()
        if self._started:
            self._ray.shutdown()
