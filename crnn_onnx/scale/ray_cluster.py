"""The Ray side of bulk recognition: importing Ray and pyarrow, connecting to a cluster,
sizing the actor pool, and finding the toolkit's error inside a failure Ray reports."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from crnn_onnx.errors import CRNNError, one_line
from crnn_onnx.extras import require

__all__ = ["plan_workers", "pyarrow_module", "ray_module", "ray_session", "toolkit_cause"]

logger = logging.getLogger(__name__)


def ray_module() -> ModuleType:
    """The ``ray`` module with Ray Data loaded.

    Raises:
        CRNNError: Ray (or the pyarrow and pandas it brings) is not installed.
    """
    require("ray.data", extra="ray", purpose="bulk recognition", name="Ray",
            brings=("pyarrow", "pandas"))
    return require("ray", extra="ray", purpose="bulk recognition", name="Ray")


def pyarrow_module() -> ModuleType:
    """The ``pyarrow`` module with its filesystems loaded.

    Raises:
        CRNNError: pyarrow is not installed.
    """
    require("pyarrow.fs", extra="ray", purpose="bulk recognition")
    return require("pyarrow", extra="ray", purpose="bulk recognition")


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the running Ray instance, or start one (``address=None``: a new local instance;
    otherwise connect to that cluster) and shut it down at the end.

    Args:
        address: a cluster address (``ray://host:10001``, ``host:6379``, ``auto``), or
            ``None`` for a local instance.
        num_cpus: CPUs of a local instance; ``None`` for all of them.

    Yields:
        The ``ray`` module.

    Raises:
        CRNNError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = ray_module()
    if ray.is_initialized():
        if address is not None:
            logger.warning("Ray is already initialised in this process; ignoring address %s",
                           address)
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:
        options["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise CRNNError(f"cannot start or reach {where}: {one_line(err, keep='first')}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def plan_workers(ray: ModuleType, workers: int | None, cpus: int, gpus: float) -> int:
    """The actor count: ``workers``, or as many as the cluster's CPUs (GPUs) hold."""
    resources = ray.cluster_resources()
    have_cpus, have_gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if workers is None:
        fit = have_gpus / gpus if gpus > 0 else have_cpus / cpus
        workers = max(1, int(fit))
    # A fixed actor pool larger than the cluster waits for resources that never come.
    if workers * cpus > have_cpus or workers * gpus > have_gpus:
        raise CRNNError(
            f"{workers} worker(s) x ({cpus} CPU, {gpus:g} GPU) do not fit the Ray cluster "
            f"({have_cpus:g} CPU, {have_gpus:g} GPU): lower workers=, threads= or "
            "gpus_per_worker="
        )
    return workers


#: How a worker's CRNNError appears in the text of the error Ray raises on the driver.
_REMOTE_ERROR = re.compile(r"crnn_onnx\.errors\.CRNNError: ([^\n]+)")


def toolkit_cause(err: BaseException) -> CRNNError | None:
    """The toolkit error behind a Ray error: the exception itself where Ray kept it (its
    ``cause``, ``__cause__``), else the last one named in the remote traceback text (Ray
    Data passes worker failures on as text)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, CRNNError):
            return current
        found = _REMOTE_ERROR.findall(str(current))
        if found:
            return CRNNError(found[-1].strip())
        seen.add(id(current))
        nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else (
            current.__cause__ or current.__context__
        )
    return None
