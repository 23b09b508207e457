"""Evaluate the embedded broadcast monitor on frames it was not trained on.

Four sets:

* ``broadcast`` - the broadcast-like set of ``default_model_data/broadcast_set.py`` (fine textures,
  uneven and compressed black, receiver graphics over snow, coloured fields; made by PIL, FFT and
  scipy code that shares nothing with the training generator), resized by the server's own
  preprocessing. ``--sheet`` draws its mistakes as a contact sheet. Every frame comes with the
  frame before it in its stream, so the set is scored twice: single frames (``classify``, the old
  API) and as ``serve`` answers streams, with the temporal cue (a still or shaken picture is
  not snow; a frame that changed like snow may be). ``--broadcast-seeds`` draws the set again.

* ``independent`` - ffmpeg lavfi test sources, ffmpeg noise/geq, ffmpeg drawtext on black and
  held-out photos scaled/cropped by ffmpeg, each also as JPEG q30 and half-size JPEG q60
  (see ``default_model_data/independent.py``), single frames and with the temporal cue (each
  frame with the source's next one). Needs ``ffmpeg`` on PATH.
* ``synthetic-holdout`` - the training generator with a fresh seed; ``program`` uses only the
  held-out photos.
* ``demo`` - every frame of ``demo/broadcast_sample.mp4`` against its cuts file, raw and with a
  trailing 5-frame probability average (what the server's window does).

Usage::

    python -m default_model_data.evaluate_default_model [--model PATH] [--json default_model_data/evaluation_report.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from client.resize import resize_to
from default_model_data.broadcast_set import SEED, broadcast_frames
from default_model_data.independent import have_ffmpeg, independent_frames, to_input
from default_model_data.photos import load_photos
from default_model_data.synth import CLASSES, make_program_holdout, sample
from streaming.server.temporal_cue import apply_cue, label_indices, signature, stillness

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "streaming" / "default_model" / "broadcast_monitor.keras"
DEMO_CLIP = REPO / "demo" / "broadcast_sample.mp4"


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def summarize(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, groups: list[str] | None = None
) -> dict[str, object]:
    m = confusion(y_true, y_pred, len(CLASSES))
    per_class = {c: round(float(m[i, i] / max(1, m[i].sum())), 4) for i, c in enumerate(CLASSES)}
    result: dict[str, object] = {
        "frames": int(len(y_true)),
        "accuracy": round(float((y_true == y_pred).mean()), 4),
        "per_class": per_class,
        "confusion": m.tolist(),
    }
    print(f"\n== {name}: {len(y_true)} frames, accuracy {result['accuracy']:.2%}")
    print("rows = truth, columns = predicted: " + " ".join(f"{c:>10}" for c in CLASSES))
    for i, c in enumerate(CLASSES):
        print(f"{c:>34} " + " ".join(f"{v:>10d}" for v in m[i]) + f"   {per_class[c]:.2%}")
    if groups is not None:
        by: dict[str, list[bool]] = defaultdict(list)
        for g, t, p in zip(groups, y_true, y_pred, strict=True):
            by[g].append(bool(t == p))
        fam = {g: round(float(np.mean(v)), 4) for g, v in sorted(by.items())}
        result["per_family"] = fam
        misses = {g: a for g, a in fam.items() if a < 1.0}
        print("families below 100%:", misses or "none")
    return result


def predict(model: Any, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate(
        [
            model.predict_on_batch(frames[i : i + batch].astype(np.float32))
            for i in range(0, len(frames), batch)
        ]
    )


def with_temporal_cue(probs: np.ndarray, inputs: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``probs`` as ``serve`` answers a stream whose previous frame was ``before`` (the model's
    inputs): the server's own temporal cue (``streaming/server/temporal_cue.py``)."""
    indices = label_indices(CLASSES, ("static",))
    out = probs.copy()
    for i in range(len(probs)):
        cued = apply_cue(probs[i], indices, signature(before[i]), signature(inputs[i]))
        if cued is not None:
            out[i] = cued[0]
    return out


def eval_independent(model: object, size: int) -> dict[str, object]:
    frames = independent_frames(load_photos(holdout=True))
    y = np.array([CLASSES.index(f.label) for f in frames])
    out: dict[str, object] = {}
    resizers = {
        "server": lambda image: resize_to(image, size, size),  # what serve does on arrival
        "area": lambda image: to_input(image, size, cv2.INTER_AREA),
        "bilinear": lambda image: to_input(image, size, cv2.INTER_LINEAR),
    }
    for interp_name, resize in resizers.items():
        x = np.stack([resize(f.image) for f in frames]).astype(np.float32)
        companions = np.stack([resize(f.companion) for f in frames]).astype(np.float32)
        probs = predict(model, x)
        groups = [f"{f.label}/{f.family}" for f in frames]
        for mode, pred in (
            ("single frames", probs.argmax(1)),
            ("with the temporal cue", with_temporal_cue(probs, x, companions).argmax(1)),
        ):
            key = interp_name if mode == "single frames" else f"{interp_name}_temporal"
            out[key] = summarize(
                f"independent (ffmpeg + held-out photos, {interp_name} resize, {mode})",
                y,
                pred,
                groups,
            )
            wrong = [
                (f.family, f.variant, CLASSES[p])
                for f, p, t in zip(frames, pred, y, strict=True)
                if p != t
            ]
            print("misses (family, variant, predicted):", wrong)
    return out


def server_inputs(images: list[np.ndarray], size: int) -> np.ndarray:
    """Frames resized exactly as ``serve`` resizes them on arrival (``client.resize``: area
    averaging from a 2× shrink), as the model's float input."""
    return np.stack([resize_to(image, size, size) for image in images]).astype(np.float32)


def eval_broadcast(
    model: Any, size: int, sheet: Path | None, seed: int = SEED
) -> dict[str, object]:
    """Single frames, and each frame after its stream's previous one (the temporal cue); the
    contact sheet shows what a stream is still told wrong (with the cue)."""
    frames = broadcast_frames(seed)
    y = np.array([CLASSES.index(f.label) for f in frames])
    inputs = server_inputs([f.image for f in frames], size)
    previous = [f.previous for f in frames]
    if any(p is None for p in previous):  # broadcast_frames() gives every frame one
        raise ValueError("a broadcast-like frame without the frame before it")
    before = server_inputs([p for p in previous if p is not None], size)
    single = predict(model, inputs)
    streamed = with_temporal_cue(single, inputs, before)
    groups = [f"{f.label}/{f.kind.split('/')[0]}" for f in frames]
    result = summarize(
        "broadcast-like (PIL/FFT/scipy frames, held-out photos, server resize)",
        y,
        single.argmax(1),
        groups,
    )
    result["mistakes"] = _mistakes(frames, single)
    temporal = summarize(
        "broadcast-like, each frame after its stream's previous frame (temporal cue)",
        y,
        streamed.argmax(1),
        groups,
    )
    temporal["mistakes"] = _mistakes(frames, streamed)
    stills = [stillness(signature(b), signature(a)) for a, b in zip(inputs, before, strict=True)]
    temporal["stillness_by_class"] = {
        label: sorted(round(s, 2) for s, f in zip(stills, frames, strict=True)
                      if f.label == label and s is not None)
        for label in CLASSES
    }  # fmt: skip
    result["temporal"] = temporal
    if sheet is not None:
        pred = streamed.argmax(1)
        wrong = [i for i in range(len(frames)) if pred[i] != y[i]]
        tiles = [
            _tile(frames[i].image, f"{frames[i].label}>{CLASSES[pred[i]]} {streamed[i].max():.2f}",
                  frames[i].kind)
            for i in wrong
        ] or [_tile(np.zeros((96, 96, 3), np.uint8), "no mistakes", "")]  # fmt: skip
        cols = min(6, len(tiles))
        while len(tiles) % cols:
            tiles.append(np.full_like(tiles[0], 255))
        rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
        # A 64-colour palette keeps the committed picture small.
        Image.fromarray(np.concatenate(rows, 0)).quantize(64).save(sheet, optimize=True)
    return result


def _mistakes(frames: list[Any], probs: np.ndarray) -> list[dict[str, object]]:
    pred = probs.argmax(1)
    mistakes = [
        {"kind": f.kind, "truth": f.label, "predicted": CLASSES[p], "score": round(float(q.max()), 3)}
        for f, p, q in zip(frames, pred, probs, strict=True)
        if CLASSES[p] != f.label
    ]  # fmt: skip
    print("misses (kind, predicted):", [(m["kind"], m["predicted"]) for m in mistakes])
    return mistakes


def _tile(image: np.ndarray, caption: str, kind: str, side: int = 128) -> np.ndarray:
    """The frame at contact-sheet size with what was expected and predicted under it."""
    tile = np.full((side + 34, side, 3), 255, np.uint8)
    tile[:side] = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    for row, text in enumerate((caption, kind)):
        cv2.putText(tile, text, (3, side + 13 + 15 * row), cv2.FONT_HERSHEY_PLAIN, 0.65,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    return tile


def eval_synthetic(model: object, size: int, per_class: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i, label in enumerate(CLASSES):
        maker = make_program_holdout if label == "program" else None
        xs += [sample(label, rng, size, maker) for _ in range(per_class)]
        ys += [i] * per_class
    pred = predict(model, np.stack(xs)).argmax(1)
    return summarize("synthetic-holdout (fresh seed, held-out photos)", np.array(ys), pred)


def eval_demo(model: object, size: int, clip: Path, window: int = 5) -> dict[str, object]:
    cuts = json.loads(clip.with_suffix(".cuts.json").read_text())
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(to_input(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size))
    cap.release()
    probs = predict(model, np.stack(frames))
    # Trailing window, as a live server would: frame t averages frames t-window+1 .. t.
    csum = np.cumsum(np.vstack([np.zeros((1, probs.shape[1])), probs]), axis=0)
    lo = np.maximum(np.arange(len(probs)) - window + 1, 0)
    smoothed = (csum[1:] - csum[lo]) / (np.arange(len(probs)) - lo + 1)[:, None]
    truth = np.full(len(frames), -1)
    for seg in cuts:
        truth[seg["first_frame"] : seg["last_frame"] + 1] = CLASSES.index(seg["label"])
    segments = []
    print(f"\n== demo clip {clip.name}: {len(frames)} frames")
    for seg in cuts:
        s = slice(seg["first_frame"], seg["last_frame"] + 1)
        raw = float((probs[s].argmax(1) == truth[s]).mean())
        win = float((smoothed[s].argmax(1) == truth[s]).mean())
        segments.append({**seg, "raw_accuracy": round(raw, 4), "window_accuracy": round(win, 4)})
        print(
            f"{seg['label']:>11} {seg['start_s']:6.2f}-{seg['end_s']:6.2f}s  raw {raw:7.2%}  window{window} {win:7.2%}"
        )
    valid = truth >= 0
    result = {
        "frames": len(frames),
        "raw_accuracy": round(float((probs.argmax(1) == truth)[valid].mean()), 4),
        "window_accuracy": round(float((smoothed.argmax(1) == truth)[valid].mean()), 4),
        "segments": segments,
    }
    print(
        f"overall raw {result['raw_accuracy']:.2%}, window{window} {result['window_accuracy']:.2%}"
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--synthetic-per-class", type=int, default=400)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--demo", type=Path, default=DEMO_CLIP)
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    parser.add_argument(
        "--sheet", type=Path, default=REPO / "streaming" / "default_model" / "broadcast_mistakes.png",
        help="contact sheet of the broadcast-like set's mistakes (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--broadcast-seeds", type=lambda text: [int(v) for v in text.split(",") if v], default=[],
        help="also score the broadcast-like set drawn with these seeds (comma-separated)",
    )  # fmt: skip
    parser.add_argument(
        "--sets", default="broadcast,independent,synthetic,demo",
        help="comma-separated sets to run (default %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    import keras

    model = keras.models.load_model(args.model, compile=False)
    size = int(model.input_shape[1])
    sets = set(args.sets.split(","))
    report: dict[str, object] = {"model": str(args.model), "input_size": size}
    if "broadcast" in sets:
        report["broadcast"] = eval_broadcast(model, size, args.sheet)
    for seed in args.broadcast_seeds:  # the same generator drawn again: a check of its own
        logger.info("broadcast-like set, seed %d", seed)
        report[f"broadcast_seed_{seed}"] = eval_broadcast(model, size, None, seed)
    if "independent" in sets and have_ffmpeg():
        report["independent"] = eval_independent(model, size)
    elif "independent" in sets:
        logger.warning("ffmpeg not found: skipping the independent set")
    if "synthetic" in sets:
        report["synthetic_holdout"] = eval_synthetic(
            model, size, args.synthetic_per_class, args.seed
        )
    if "demo" in sets and args.demo.exists():
        report["demo"] = eval_demo(model, size, args.demo)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
