"""The machine a benchmark ran on: CPU, package versions, and how busy other processes were."""

from __future__ import annotations

import os
import platform
import time

__all__ = ["LoadMeter", "blas_sgemm_rate", "describe_machine", "package_versions"]


def describe_machine() -> str:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    extras = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
              if f in flags]
    cpus = os.cpu_count() or 1
    return f"{model}, {cpus} CPU{'s' if cpus != 1 else ''}" + (
        f" ({', '.join(extras)})" if extras else "")


def blas_sgemm_rate(*, size: int = 2048, seconds: float = 1.0) -> float:
    """The fp32 matrix-multiply rate numpy's BLAS reaches here, in FLOP/s (square ``size``
    GEMMs for about ``seconds``, all the BLAS's threads)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: the BLAS's thread pool
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2.0 * size**3 * runs / (time.perf_counter() - start)


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("onnxruntime", "onnxruntime-gpu", "torch", "numpy", "opencv-python-headless"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class LoadMeter:
    """Share of all CPUs that other processes used between start and :meth:`stop` (Linux)."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz  # all but idle and iowait
        t = os.times()
        mine = t.user + t.system + t.children_user + t.children_system
        return time.monotonic(), busy, mine

    def stop(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, others / (wall * (os.cpu_count() or 1))) if wall > 0 else None
