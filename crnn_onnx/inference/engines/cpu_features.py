"""What the CPU computes natively, for engines that would otherwise emulate it quietly.

OpenVINO accepts a bf16 precision hint on any x86 CPU; without bf16 instructions it either
ignores the hint or converts to and from bf16 around fp32 arithmetic, slower than fp32 and no
more accurate. :func:`bf16_refusal` says, before a model is compiled, why bf16 cannot run
here. The flags come from ``/proc/cpuinfo`` (what the kernel saw via CPUID); where that file
does not exist (macOS, Windows) the engine's own report is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["BF16_FLAGS", "CPUINFO", "bf16_refusal", "cpu_flags"]

CPUINFO = Path("/proc/cpuinfo")
#: Either flag gives native bf16 dot products: AMX tiles, or AVX-512 ``vdpbf16ps``.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: The ``flags`` line on x86, ``Features`` on Arm.
_FLAG_KEYS = ("flags", "Features")


def cpu_flags(path: str | Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags listed in a cpuinfo file.

    Args:
        path: a file in the format of Linux's ``/proc/cpuinfo``.

    Returns:
        Every flag of every ``flags`` (x86) or ``Features`` (Arm) line, e.g.
        ``{"avx2", "avx512_bf16", ...}``; empty when the file has no such line.

    Raises:
        OSError: the file cannot be read (no ``/proc`` on this system).
    """
    flags: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            key, colon, value = line.partition(":")
            if colon and key.strip() in _FLAG_KEYS:
                flags.update(value.split())
    return frozenset(flags)


def bf16_refusal(capabilities: Callable[[], Iterable[str]]) -> str | None:
    """Why this CPU cannot compute bf16 natively, or ``None`` when it can.

    Args:
        capabilities: returns the engine's report of the CPU's abilities (OpenVINO's
            ``OPTIMIZATION_CAPABILITIES``, where native bf16 shows as ``BF16``); called only
            when :data:`CPUINFO` cannot be read.

    Returns:
        A one-line message naming the missing flags and what to use instead, or ``None``.
    """
    try:
        flags = cpu_flags(CPUINFO)  # looked up at call time, so a test can point it elsewhere
    except OSError:
        reported = sorted(capabilities())
        if "BF16" in reported:
            return None
        return (
            "precision='bf16' needs a CPU with AMX or AVX512-BF16; this CPU has neither "
            f"(OpenVINO reports {', '.join(reported) or 'no capabilities'}): "
            "use precision='fp32'"
        )
    if flags & BF16_FLAGS:
        return None
    return (
        "precision='bf16' needs a CPU with AMX or AVX512-BF16; this CPU has neither "
        f"(flags read from {CPUINFO}): use precision='fp32'"
    )
