#!/usr/bin/env python3
"""Train the upstream CRNN architecture on synthetic and real word crops, on the CPU.

Reads shards written by ``scripts/render_pool.py`` (training pools and a held-out validation
set rendered with font families and words never used in training) and, with ``--real``, folders
of real labelled crops (``crnn_onnx.training.real``): a tenth of them, by blocks, is held out
for validation, the rest is augmented afresh every time it is drawn
(``crnn_onnx.training.augment``) and makes up ``--real-share`` of every batch. Checkpoints are
chosen on the mean of the synthetic and real validation accuracies. Trains with CTC loss (blank
0), AdamW, warm-up plus cosine learning rate, gradient clipping and an exponential moving
average (EMA) of the weights. Convolutions run channels-last in bf16 autocast where the CPU
supports it (LSTM, loss and evaluation stay fp32; speeds in docs/training.md). ``--init``
starts from an existing checkpoint (fine-tuning the shipped model) with a fresh optimiser and
schedule. Resumable: ``RUN/last.pth`` is written at every evaluation, and a rerun with the same
``--run`` continues from it. Checkpoints are in upstream CRNN-TextRec format (``{'model':
state_dict, 'epoch': ..., ...}``); the weights (EMA or raw) with the best validation word
accuracy go to ``RUN/best.pth`` (written at the first evaluation, then whenever the score
improves). Log: ``RUN/train.log``. Exit codes: 0 trained, 1 a bad input (one line on stderr,
checked before the run folder is made), 2 bad usage.

    python scripts/train.py --pool data/pool --val data/val --run runs/crnn --total-steps 20000
    python scripts/train.py --pool data/scene --pool data/plain --val data/val \
        --real ../shared/real-train/ic15 --real ../shared/real-train/iiit5k --real-share 0.25 \
        --init weights/crnn.pth --run runs/v2 --total-steps 30000
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import math
import os
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from crnn_onnx.config import DEFAULT_CHARSET, CRNNConfig
from crnn_onnx.contract import sequence_length
from crnn_onnx.errors import CRNNError
from crnn_onnx.export.checkpoint import load_checkpoint, save_checkpoint
from crnn_onnx.export.model import CRNN
from crnn_onnx.inference.decoder import ctc_greedy_decode
from crnn_onnx.training.augment import augment_crop
from crnn_onnx.training.canvas import resize_and_pad
from crnn_onnx.training.real import RealCrop, read_real_folder, validation_split

CONFIG = CRNNConfig()
CHAR_TO_ID = {ch: i + 1 for i, ch in enumerate(DEFAULT_CHARSET)}


class Pool:
    """All shards of some folders in memory: uint8 (N, 32, W, 3) BGR images and labels."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.loaded: set[str] = set()
        self.images = torch.empty((0, CONFIG.height, CONFIG.width, 3), dtype=torch.uint8)
        self.labels: list[str] = []
        self.refresh()

    def refresh(self) -> int:
        """Load shards that appeared since the last call; returns how many were added."""
        new = [p for folder in self.folders for p in sorted(glob.glob(str(folder / "*.npz")))
               if p not in self.loaded and not p.endswith(".tmp.npz")]
        if not new:
            return 0
        images, labels = [self.images], list(self.labels)
        for path in new:
            with np.load(path) as shard:
                images.append(torch.from_numpy(shard["images"]))
                labels.extend(str(x) for x in shard["labels"])
            self.loaded.add(path)
        self.images = torch.cat(images)
        self.labels = labels
        return len(new)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def of_images(cls, images: list[np.ndarray], labels: list[str]) -> Pool:
        """A pool of already fitted (32, W, 3) uint8 crops."""
        pool = cls()
        if images:
            pool.images = torch.from_numpy(np.stack(images))
        pool.labels = list(labels)
        return pool


class RealCrops:
    """Real training crops kept as read; :meth:`draw` augments and fits a random few."""

    def __init__(self, crops: list[RealCrop], seed: int) -> None:
        self.images = [read_bgr(c.path) for c in crops]
        self.labels = [c.label for c in crops]
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def draw(self, n: int) -> tuple[torch.Tensor, list[str]]:
        picks = [self.rng.randrange(len(self.labels)) for _ in range(n)]
        images = [resize_and_pad(augment_crop(self.images[i], self.rng), CONFIG) for i in picks]
        return torch.from_numpy(np.stack(images)), [self.labels[i] for i in picks]


def read_pool(name: str, folders: list[Path]) -> Pool:
    """The shards of ``folders``; a missing folder or no shard at all is a CRNNError."""
    for folder in folders:
        if not folder.is_dir():
            raise CRNNError(f"{folder} is not a folder of shards")
    pool = Pool(*folders)
    if not len(pool):
        raise CRNNError(f"no shards (*.npz) in the {name}: {', '.join(map(str, folders))}")
    return pool


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CRNNError(f"cannot read the image {path}")
    return image


def normalise(batch_u8: torch.Tensor) -> torch.Tensor:
    """(N, 32, W, 3) uint8 BGR -> (N, 3, 32, W) float32, upstream's RGB ImageNet normalisation."""
    x = batch_u8.flip(-1).float()
    mean = torch.tensor(CONFIG.mean) * 255
    std = torch.tensor(CONFIG.std) * 255
    # NHWC in memory already: the permuted view is channels-last, which oneDNN's convolutions
    # run fastest.
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def encode(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [CHAR_TO_ID[c] for label in labels for c in label]
    return torch.tensor(ids, dtype=torch.long), torch.tensor([len(s) for s in labels])


def forward(model: CRNN, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """(N, 3, 32, W) -> (T, N, C) fp32 logits; the backbone in bf16 autocast when asked."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = model.feat_extract(x)
    return model.head(model.neck(feats.float()))


@torch.no_grad()
def evaluate(model: CRNN, pool: Pool, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(pool), batch_size):
        x = normalise(pool.images[i:i + batch_size])
        preds = [d.text for d in ctc_greedy_decode(model(x).numpy(), CONFIG.charset)]
        correct += sum(p == t for p, t in zip(preds, pool.labels[i:i + batch_size], strict=True))
    return correct / max(1, len(pool))


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 2% of ``peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main() -> None:
    try:
        train()
    except CRNNError as err:
        # One line and exit 1, like the CLI; the run folder keeps its last good checkpoint.
        raise SystemExit(f"train.py: {err}") from None


def train() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, action="append", required=True,
                        help="a folder of shards; repeat for several")
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--real", type=Path, action="append", default=[],
                        help="a folder of real crops with labels.tsv; repeat for several")
    parser.add_argument("--real-share", type=float, default=0.25,
                        help="share of each batch drawn from the real crops (augmented)")
    parser.add_argument("--total-steps", type=int, default=20000)
    parser.add_argument("--minutes", type=float, default=None,
                        help="train for this much wall-clock time instead of --total-steps; "
                             "the learning-rate schedule follows the elapsed time")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this checkpoint's weights (ignored when RUN/last.pth "
                             "exists, which resumes instead)")
    parser.add_argument("--reset-ema", action="store_true",
                        help="on resume, restart the EMA from the current training weights")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals slow CPU kernels many times over
    torch.manual_seed(args.seed)
    # Inputs are checked before the run folder is made, so a typo leaves nothing behind.
    pool, val = read_pool("training pool", args.pool), read_pool("validation set", [args.val])
    real_train: list[RealCrop] = []
    real_val: list[RealCrop] = []
    real_read: list[dict[str, object]] = []
    for folder in args.real:
        crops, dropped = read_real_folder(folder, DEFAULT_CHARSET)
        train_part, val_part = validation_split(crops)
        real_train += train_part
        real_val += val_part
        real_read.append({"folder": str(folder), "train": len(train_part),
                          "val": len(val_part), "dropped": dict(dropped)})
    real = RealCrops(real_train, args.seed) if real_train else None
    val_real = Pool.of_images([resize_and_pad(read_bgr(c.path), CONFIG) for c in real_val],
                              [c.label for c in real_val])
    n_real = round(args.batch_size * args.real_share) if real is not None else 0
    model = load_checkpoint(args.init, CONFIG) if args.init else CRNN(CONFIG.num_classes)
    args.run.mkdir(parents=True, exist_ok=True)
    log_file = open(args.run / "train.log", "a", encoding="utf-8")

    def log(**fields: object) -> None:
        line = json.dumps({"time": time.strftime("%H:%M:%S"), **fields})
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    for entry in real_read:
        log(event="real", **entry)
    model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # best starts below any score, so the first evaluation always writes RUN/best.pth.
    step, best, trained_s, ema_start = 0, -1.0, 0.0, 0
    last = args.run / "last.pth"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(state["train_model"])
        ema.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        step, best = int(state["step"]), float(state["best_acc"])
        trained_s = float(state.get("trained_s", 0.0))
        ema_start = int(state.get("ema_start", 0))
        if args.reset_ema:
            ema.load_state_dict(model.state_dict())
            ema_start = step
        log(event="resume", step=step, best=best)
    log(event="start", pool_size=len(pool), val_size=len(val),
        args={k: str(v) for k, v in vars(args).items()})

    frames = sequence_length(CONFIG.width)
    generator = torch.Generator().manual_seed(args.seed + step)
    model.train()
    seen, window_start, losses = 0, time.time(), []
    budget_s = args.minutes * 60 if args.minutes else None
    step_start = time.time()

    def progress() -> float:
        if budget_s is not None:
            return (trained_s + time.time() - step_start) / budget_s
        return step / args.total_steps

    while progress() < 1.0:
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, progress(), args.lr, args.warmup)
        idx = torch.randint(len(pool), (args.batch_size - n_real,), generator=generator)
        images = pool.images[idx]
        labels = [pool.labels[i] for i in idx.tolist()]
        if real is not None and n_real:
            real_images, real_labels = real.draw(n_real)
            images = torch.cat([images, real_images])
            labels += real_labels
        x = normalise(images)
        targets, target_lengths = encode(labels)
        logits = forward(model, x, bf16=not args.no_bf16)
        log_probs = F.log_softmax(logits, dim=2)
        input_lengths = torch.full((len(labels),), frames, dtype=torch.long)
        loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0,
                          zero_infinity=True)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        # EMA with the usual warm-up of its decay, so early random weights fade fast.
        decay = min(args.ema, (1 + step - ema_start) / (10 + step - ema_start))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
            for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                e.copy_(b)
        step += 1
        seen += len(labels)
        losses.append(loss.item())
        if step % 100 == 0:
            elapsed = time.time() - window_start
            log(step=step, loss=round(float(np.mean(losses)), 4),
                lr=round(optimiser.param_groups[0]["lr"], 6), images_per_s=round(seen / elapsed, 1))
            seen, window_start, losses = 0, time.time(), []
        finished = progress() >= 1.0
        if step % args.eval_every == 0 or finished:
            trained_s += time.time() - step_start
            accs = {"ema": evaluate(ema, val), "raw": evaluate(model, val)}
            real_accs = ({"ema": evaluate(ema, val_real), "raw": evaluate(model, val_real)}
                         if len(val_real) else {})
            # Chosen on synthetic and real validation alike, when there is a real split.
            scores = {k: (a + real_accs[k]) / 2 if real_accs else a for k, a in accs.items()}
            acc, raw_acc = scores["ema"], scores["raw"]
            model.train()
            added = pool.refresh()
            if max(acc, raw_acc) > best:
                best = max(acc, raw_acc)
                save_checkpoint(ema if acc >= raw_acc else model, args.run / "best.pth",
                                epoch=step, extra={"best_acc": best, "step": step,
                                                   "ema": acc >= raw_acc})
            state = {"model": ema.state_dict(), "train_model": model.state_dict(),
                     "optimizer": optimiser.state_dict(), "step": step, "best_acc": best,
                     "epoch": step, "trained_s": trained_s, "ema_start": ema_start}
            torch.save(state, args.run / "last.tmp")
            os.replace(args.run / "last.tmp", last)
            log(event="eval", step=step, val_acc=round(acc, 4), raw_val_acc=round(raw_acc, 4),
                synth_val={k: round(v, 4) for k, v in accs.items()},
                real_val={k: round(v, 4) for k, v in real_accs.items()}, best=round(best, 4),
                pool=len(pool), shards_added=added)
            window_start, seen, step_start = time.time(), 0, time.time()
    log(event="done", step=step, best=best)


if __name__ == "__main__":
    main()
