"""What ``crnn-onnx benchmark`` measured, and the report as text tables.

:class:`BenchmarkReport` holds engine timings (:class:`EngineTiming`), the pipeline's stage
breakdown (:class:`PipelineReport`, :class:`StageTiming`) and the machine they ran on;
:func:`format_text` prints it, ``as_dict`` makes it JSON-ready.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "BASELINES",
    "BenchmarkReport",
    "EngineTiming",
    "PipelineReport",
    "StageTiming",
    "format_text",
]

#: Engines every timing is compared with ("vs torch", "vs ort").
BASELINES: tuple[str, ...] = ("torch", "ort")


@dataclass(frozen=True)
class EngineTiming:
    """Latency of one engine at one batch size.

    Attributes:
        engine: one of :data:`~crnn_onnx.perf.field.FIELD`.
        batch: images per run.
        width: input width.
        median_ms, p90_ms: latency of one run (one batch), in milliseconds.
        runs: timed runs.
        precision: the arithmetic the engine ran in (fp32, bf16, int8, fp16).
    """

    engine: str
    batch: int
    width: int
    median_ms: float
    p90_ms: float
    runs: int
    precision: str = "fp32"

    @property
    def images_per_s(self) -> float:
        """Throughput at the median latency."""
        return self.batch / (self.median_ms / 1000.0)


@dataclass(frozen=True)
class StageTiming:
    """Time of one pipeline stage, per image, when the stages run one after the other."""

    stage: str
    ms_per_image: float


@dataclass(frozen=True)
class PipelineReport:
    """predict's stages, and predict end to end, on the same image files.

    Attributes:
        images: files read.
        batch: batch size of the inference stage and of the Predictor.
        source: where the files came from.
        stages: decode, preprocess, inference, ctc, one after the other.
        end_to_end_s: wall time of :meth:`Predictor.predict` over the files
            (the mean over the rounds, as is the inference stage's).
        engine: what ran the model, and in which arithmetic.
    """

    images: int
    batch: int
    source: str
    stages: tuple[StageTiming, ...]
    end_to_end_s: float
    engine: str = "onnxruntime, fp32"

    @property
    def model_only_images_per_s(self) -> float:
        """Throughput of the inference stage alone."""
        inference = next(s for s in self.stages if s.stage == "inference")
        return 1000.0 / inference.ms_per_image

    @property
    def end_to_end_images_per_s(self) -> float:
        return self.images / self.end_to_end_s

    @property
    def efficiency(self) -> float:
        """End-to-end throughput as a fraction of model-only throughput."""
        return self.end_to_end_images_per_s / self.model_only_images_per_s


@dataclass(frozen=True)
class BenchmarkReport:
    """Everything :func:`run_benchmark` measured.

    Attributes:
        machine: CPU model, logical CPUs, notable instruction sets.
        versions: package versions (onnxruntime, torch, numpy, opencv).
        threads: intra-op threads given to every engine.
        width: input width of the engine timings.
        inputs: what the engines were fed, in words.
        models: engine -> model file (or checkpoint, for torch).
        timings: one per engine and batch size that ran.
        max_abs_diff: engine -> largest |logit difference| from ``ort`` on the largest
            batch (a check that the engines compute the same model).
        pipeline: the stage breakdown, when images were given.
        startup_s: median wall time of a one-image ``crnn-onnx predict`` process.
        background_load: share of the CPUs used by *other* processes while this ran
            (``None`` where it cannot be read).
        notes: what was skipped and why, and caveats.
        ceilings: the machine's measured GEMM rate in FLOP/s, by arithmetic (``fp32``,
            and ``bf16`` on a CPU with bf16 units).
        flops_per_image: floating-point operations of one image's forward pass.
    """

    machine: str
    versions: dict[str, str]
    threads: int
    width: int
    inputs: str
    models: dict[str, str]
    timings: tuple[EngineTiming, ...]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    pipeline: PipelineReport | None = None
    startup_s: float | None = None
    background_load: float | None = None
    notes: tuple[str, ...] = ()
    ceilings: dict[str, float] = field(default_factory=dict)
    flops_per_image: float | None = None

    def timing(self, engine: str, batch: int) -> EngineTiming | None:
        return next((t for t in self.timings if t.engine == engine and t.batch == batch), None)

    def share_of_ceiling(self, timing: EngineTiming) -> float | None:
        """The fraction of the machine's GEMM rate in the timing's arithmetic that its
        images/s amount to; ``None`` without a ceiling for that arithmetic."""
        ceiling = self.ceilings.get(timing.precision)
        if ceiling is None or self.flops_per_image is None:
            return None
        return timing.images_per_s * self.flops_per_image / ceiling

    def speedup(self, engine: str, batch: int, baseline: str) -> float | None:
        """How many times faster ``engine`` is than ``baseline`` at ``batch`` (medians)."""
        mine, base = self.timing(engine, batch), self.timing(baseline, batch)
        if mine is None or base is None:
            return None
        return base.median_ms / mine.median_ms

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, plus images/s and speed-ups per timing."""
        out = asdict(self)
        out["timings"] = [
            {
                **asdict(t),
                "images_per_s": t.images_per_s,
                "share_of_ceiling": self.share_of_ceiling(t),
                **{f"speedup_vs_{b}": self.speedup(t.engine, t.batch, b) for b in BASELINES},
            }
            for t in self.timings
        ]
        if self.pipeline is not None:
            out["pipeline"]["model_only_images_per_s"] = self.pipeline.model_only_images_per_s
            out["pipeline"]["end_to_end_images_per_s"] = self.pipeline.end_to_end_images_per_s
            out["pipeline"]["efficiency"] = self.pipeline.efficiency
        out["notes"] = list(self.notes)
        return out


def format_text(report: BenchmarkReport) -> str:
    """The report as aligned text tables."""
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    lines = [
        f"machine   {report.machine}",
        f"versions  {versions}",
        f"inputs    {report.inputs}, width {report.width}, {report.threads} threads per engine",
        "",
        f"{'engine':<15}{'batch':>6}{'median ms':>11}{'p90 ms':>9}{'images/s':>10}"
        f"{'vs torch':>10}{'vs ort':>8}{'ceiling':>9}",
    ]

    def ratio(value: float | None) -> str:
        return f"{value:.2f}x" if value is not None else "-"

    def share(value: float | None) -> str:
        return f"{100 * value:.0f}%" if value is not None else "-"

    for t in report.timings:
        lines.append(
            f"{t.engine:<15}{t.batch:>6}{t.median_ms:>11.2f}{t.p90_ms:>9.2f}"
            f"{t.images_per_s:>10.1f}{ratio(report.speedup(t.engine, t.batch, 'torch')):>10}"
            f"{ratio(report.speedup(t.engine, t.batch, 'ort')):>8}"
            f"{share(report.share_of_ceiling(t)):>9}"
        )
    if report.ceilings and report.flops_per_image:
        rates = ", ".join(f"{kind} {rate / 1e9:.0f} GFLOP/s (≈ "
                          f"{rate / report.flops_per_image:.0f} images/s)"
                          for kind, rate in report.ceilings.items())
        lines.append(f"ceilings: GEMM {rates}; the model needs "
                     f"{report.flops_per_image / 1e9:.2f} GFLOP per image")
    if report.max_abs_diff:
        diffs = ", ".join(f"{e} {d:.2g}" for e, d in report.max_abs_diff.items())
        lines.append(f"max |logit difference| from ort: {diffs}")
    p = report.pipeline
    if p is not None:
        sequential = sum(s.ms_per_image for s in p.stages)
        lines += [
            "",
            f"pipeline: {p.images} images from {p.source}, batch {p.batch}, {p.engine}",
            f"{'stage':<20}{'ms/image':>10}{'share':>8}",
        ]
        for s in p.stages:
            lines.append(f"{s.stage:<20}{s.ms_per_image:>10.3f}"
                         f"{100 * s.ms_per_image / sequential:>7.1f}%")
        lines += [
            f"{'one after another':<20}{sequential:>10.3f}",
            f"{'predict end to end':<20}{1000 * p.end_to_end_s / p.images:>10.3f}"
            f"   = {p.end_to_end_images_per_s:.1f} images/s, {100 * p.efficiency:.0f}% of "
            f"model-only {p.model_only_images_per_s:.1f} images/s",
        ]
    if report.startup_s is not None:
        lines += ["", f"one-image predict process, start to exit: {report.startup_s:.2f} s "
                      "(median)"]
    if report.background_load is not None:
        lines.append(f"other processes used {100 * report.background_load:.0f}% of the CPUs "
                     "meanwhile")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)
