"""``eval`` and ``synth``: measure a model on a labelled set, and render one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crnn_onnx.cli._app import app, errors_to_exit
from crnn_onnx.cli._shared import (
    AllowlistOption,
    BatchSizeOption,
    BeamWidthOption,
    BlocklistOption,
    ConfigOverrideOption,
    DecoderOption,
    DeviceOption,
    EngineOption,
    LexiconOption,
    ModelOption,
    PrecisionOption,
    ReportFormat,
    ThreadsOption,
    WidthPolicyOption,
    config_override,
    model_or_default,
)
from crnn_onnx.synth.words import Split


@app.command("eval")
def evaluate(
    labels: Annotated[
        Path,
        typer.Argument(help="TSV of 'relative/path<TAB>text' lines, paths relative to its folder "
                       "(or the folder holding it as labels.tsv); or an LMDB dataset folder "
                       "(num-samples, image-%09d, label-%09d keys).",
                       metavar="LABELS", show_default=False),
    ],
    model: ModelOption = None,
    config: ConfigOverrideOption = None,
    engine: EngineOption = "onnxruntime",
    precision: PrecisionOption = "fp32",
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    threads: ThreadsOption = None,
    width_policy: WidthPolicyOption = "auto",
    decoder: DecoderOption = None,
    beam_width: BeamWidthOption = 10,
    allowlist: AllowlistOption = None,
    blocklist: BlocklistOption = None,
    lexicon: LexiconOption = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option("--min-accuracy", min=0.0, max=1.0,
                     help="Exit 1 when word accuracy (0..1) is below this: a CI gate."),
    ] = None,
    exact: Annotated[
        bool,
        typer.Option("--exact", help="Score case and punctuation as written (for models whose "
                     "charset has them); default: case-insensitive, letters and digits only."),
    ] = False,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="text or json (on stdout).")
    ] = "text",
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Also write an HTML page of every misread crop, worst "
                     "first, to DIR/index.html (crops copied beside it).", metavar="DIR"),
    ] = None,
) -> None:
    """Measure word accuracy, CER, accuracy by length and confusions on a labelled set."""
    import json

    from crnn_onnx.evaluation.datasets import read_labelled_set
    from crnn_onnx.evaluation.evaluate import evaluate as run_evaluation
    from crnn_onnx.inference.options import PredictorOptions
    from crnn_onnx.inference.predictor import Predictor

    with errors_to_exit():
        items = read_labelled_set(labels)
        cfg = config_override(config)
        options = PredictorOptions(
            engine=engine, precision=precision, device=device, batch_size=batch_size,
            threads=threads, width_policy=width_policy,
            decoder=decoder, beam_width=beam_width, allowlist=allowlist, blocklist=blocklist,
            lexicon=lexicon)
        predictor = Predictor(model_or_default(model), options, config=cfg)
        report, predictions = run_evaluation(predictor, items, exact=exact)
        if report_dir is not None:
            from crnn_onnx.evaluation.report import write_html_report

            page = write_html_report(
                report_dir, report, model=str(model_or_default(model)), labels=str(labels),
                images={str(item.path): item.data for item in items if item.data is not None},
            )
    for item, prediction in zip(items, predictions, strict=True):
        if prediction.error:
            typer.echo(f"warning: {item.path}: {prediction.error}", err=True)
    if fmt == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(f"images         {report.total}")
        typer.echo(f"word accuracy  {report.word_accuracy:.2%} ({report.correct}/{report.total})")
        typer.echo(f"CER            {report.cer:.2%}")
        typer.echo(f"unreadable     {report.failed}")
        by_length = ", ".join(f"{k}: {a:.0%} ({n})" for k, (n, a) in report.by_length.items())
        typer.echo(f"by length      {by_length}")
        confusions = ", ".join(f"{t or '∅'}→{p or '∅'} ×{c}" for t, p, c in report.confusions)
        typer.echo(f"confusions     {confusions or 'none'}")
    if report_dir is not None:
        typer.echo(f"report: {page} ({len(report.misreads)} misreads)", err=True)
    if min_accuracy is not None and report.word_accuracy < min_accuracy:
        typer.echo(
            f"error: word accuracy {report.word_accuracy:.2%} is below --min-accuracy "
            f"{min_accuracy:.2%}", err=True,
        )
        raise typer.Exit(1)


def _share(flag: str, what: str) -> typer.models.OptionInfo:
    """A ``synth`` option giving the share (0..1) of the crops that are ``what``."""
    return typer.Option(flag, min=0.0, max=1.0, help=f"Share of {what}; 0 draws none and "
                        "leaves a seed's crops unchanged.")


@app.command()
def synth(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write PNG crops and labels.tsv into.",
                             metavar="OUT_DIR", show_default=False)
    ],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Crops to render.")] = 100,
    split: Annotated[
        Split,
        typer.Option("--split", help="heldout: font families and words never used in "
                     "training (for evaluation); train: the training distribution."),
    ] = "heldout",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same crops.")] = 0,
    compounds: Annotated[
        float, _share("--compounds", "CamelCase texts (PayPal, SaiGon), as in logos and brand "
                      "names")
    ] = 0.0,
    long: Annotated[
        float, _share("--long", "long texts (13 to 24 characters: long words, compounds, codes)")
    ] = 0.0,
    realism: Annotated[
        float, _share("--realism", "crops drawn as photographed scenes: natural-image "
                      "backgrounds, signs, curved and projected words, outlined and 3-D "
                      "lettering, uneven light, signs seen from the street far off")
    ] = 0.0,
) -> None:
    """Render synthetic word crops with installed fonts, labelled for `crnn-onnx eval`."""
    with errors_to_exit():
        from crnn_onnx.synth.dataset import write_dataset

        labels = write_dataset(out_dir, count, split=split, seed=seed, compounds=compounds,
                               long=long, realism=realism)
    typer.echo(f"wrote {count} crops and {labels}")
