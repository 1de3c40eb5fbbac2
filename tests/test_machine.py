"""The benchmark's machine description: CPU, package versions, other processes' CPU share."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from crnn_onnx.perf.machine import LoadMeter, describe_machine, package_versions


def test_machine_description_counts_the_cpus() -> None:
    cpus = os.cpu_count() or 1
    assert f"{cpus} CPU" in describe_machine()


def test_package_versions_name_python_and_numpy() -> None:
    versions = package_versions()
    assert versions["python"].count(".") == 2
    assert "numpy" in versions


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux's /proc/stat")
def test_load_meter_sees_a_busy_process_that_is_not_this_one() -> None:
    meter = LoadMeter()
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\n"
                             "while time.time() - t < 1.5: pass"])
    try:
        time.sleep(1.2)
        share = meter.stop()  # before the child is reaped: its CPU time is not ours yet
    finally:
        busy.wait()
    assert share is not None
    # One busy process is 1 / cpus of the machine (50% on 2 CPUs); allow for start-up time.
    assert 0.5 / (os.cpu_count() or 1) <= share <= 1.05  # clock ticks round
