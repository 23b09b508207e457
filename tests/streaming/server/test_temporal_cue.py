"""The temporal cue: a frame that repeats or moves its stream's previous frame is not snow; one
that changed like snow may be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from client.api.v1 import stream_classifier_pb2 as pb
from streaming.server.serve_config import ModelConfig
from streaming.server.temporal_cue import (
    MIN_SHIFT_EXPLAINED,
    MIN_STILLNESS,
    CueEffect,
    apply_cue,
    coarse_change,
    label_indices,
    shift_explained,
    signature,
    stillness,
)

SIDE = 96
STATIC_LAST = np.array([0.1, 0.0, 0.05, 0.85], np.float32)  # program, black, bars, static


def _snow(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3)).astype(np.float32)


def _texture(seed: int = 1) -> np.ndarray:
    """Fine structured texture (gravel-like): blurred noise, strong contrast."""
    noise = np.random.default_rng(seed).normal(0, 1, (SIDE, SIDE)).astype(np.float32)
    grain = cv2.GaussianBlur(noise, (0, 0), 0.8)
    plane = np.clip(128 + 300 * grain, 0, 255)
    return np.repeat(plane[..., None], 3, axis=2)


def _faint_snow(seed: int, level: float = 200.0, sigma: float = 6.0) -> np.ndarray:
    """Weak snow on a bright field: what a single 96×96 frame barely shows."""
    noise = np.random.default_rng(seed).normal(0, sigma, (SIDE, SIDE, 3))
    return np.clip(level + noise, 0, 255).astype(np.float32)


def _shaken(dx: float, dy: float, seed: int = 1) -> np.ndarray:
    """Texture filmed at 4× the model's size by a camera moved by (dx, dy) pixels, then shrunk
    as the server shrinks it: a fraction of a pixel at the model's scale."""
    big_side = 4 * SIDE
    noise = np.random.default_rng(seed).normal(0, 1, (big_side, big_side)).astype(np.float32)
    plane = np.clip(128 + 1200 * cv2.GaussianBlur(noise, (0, 0), 3.2), 0, 255)
    moved = cv2.warpAffine(
        plane, np.float32([[1, 0, dx], [0, 1, dy]]), (big_side, big_side),
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip
    small = cv2.resize(moved, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return np.repeat(small[..., None], 3, axis=2)


def _camera(image: np.ndarray, seed: int, sigma: float = 1.5) -> np.ndarray:
    """The same still picture again, with other sensor noise."""
    noisy = image + np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(noisy, 0, 255).astype(np.float32)


def _osd(image: np.ndarray) -> np.ndarray:
    """A receiver's menu drawn crisply over the picture (the same on every frame)."""
    out = image.astype(np.uint8)
    cv2.rectangle(out, (10, 10), (60, 40), (0, 0, 90), -1)
    for row, text in enumerate(("Picture", "Sound", "Exit")):
        cv2.putText(out, text, (12, 20 + 9 * row), cv2.FONT_HERSHEY_PLAIN, 0.6, (0, 255, 0), 1)
    return out.astype(np.float32)


@pytest.mark.parametrize(
    "name, previous, current, still",
    [
        ("snow redrawn", _snow(1), _snow(2), False),
        ("snow under the same menu", _osd(_snow(3)), _osd(_snow(4)), False),
        ("still texture, sensor noise", _camera(_texture(), 5), _camera(_texture(), 6), True),
        ("still texture under a menu", _osd(_texture()), _camera(_osd(_texture()), 7), True),
        ("another texture (a cut)", _texture(8), _texture(9), False),
    ],
)
def test_stillness_tells_a_still_picture_from_snow(
    name: str, previous: np.ndarray, current: np.ndarray, still: bool
) -> None:
    value = stillness(signature(previous), signature(current))
    assert value is not None, name
    assert (value >= MIN_STILLNESS) == still, f"{name}: stillness {value:.2f}"


@pytest.mark.parametrize(
    "name, previous, current",
    [
        ("flat frames: too little detail", np.full((SIDE, SIDE, 3), 40.0), np.full((SIDE, SIDE, 3), 40.0)),
        ("other sizes (a model swap)", _texture()[:64, :64], _texture()),
    ],
)  # fmt: skip
def test_stillness_undecided(name: str, previous: np.ndarray, current: np.ndarray) -> None:
    assert stillness(signature(previous), signature(current)) is None, name


def test_signature_is_small_and_a_copy() -> None:
    image = _texture().astype(np.uint8)
    sig = signature(image)
    assert sig.shape == (48, 48) and sig.dtype == np.float32
    image[:] = 0
    assert sig.any()  # a copy: the batch's array may be reused
    assert signature(np.zeros((24, 32, 1), np.uint8)).shape == (24, 32)  # one channel, tiny


@pytest.mark.parametrize(
    "name, previous, current, moved",
    [
        ("camera moved a quarter pixel", _camera(_shaken(0, 0), 1), _camera(_shaken(1, 0), 2), True),
        ("camera moved 2, 3 pixels at 4x", _camera(_shaken(0, 0), 1), _camera(_shaken(2, 3), 2), True),
        ("snow redrawn", _snow(1), _snow(2), False),
        ("faint snow redrawn", _faint_snow(1), _faint_snow(2), False),
        ("snow under the same menu", _osd(_snow(3)), _osd(_snow(4)), False),
        ("another texture (a cut)", _texture(8), _texture(9), False),
    ],
)  # fmt: skip
def test_shift_explained_tells_a_shaken_camera_from_snow(
    name: str, previous: np.ndarray, current: np.ndarray, moved: bool
) -> None:
    value = shift_explained(signature(previous), signature(current))
    assert value is not None, name
    assert (value >= MIN_SHIFT_EXPLAINED) == moved, f"{name}: explained {value:.3f}"


@pytest.mark.parametrize(
    "name, previous, current, low, high",
    [
        ("the same picture", _camera(_texture(), 1), _camera(_texture(), 2), 0.0, 1.0),
        ("faint snow redrawn", _faint_snow(1), _faint_snow(2), 0.0, 2.0),
        ("a cut", _texture(8), _texture(9), 10.0, 255.0),
        ("a fade to black", _texture(8), _texture(8) * 0.5, 30.0, 255.0),
    ],
)
def test_coarse_change_sees_cuts_not_detail(
    name: str, previous: np.ndarray, current: np.ndarray, low: float, high: float
) -> None:
    value = coarse_change(signature(previous), signature(current))
    assert value is not None and low <= value <= high, f"{name}: {value}"


def test_nothing_to_compare() -> None:
    flat = signature(np.full((SIDE, SIDE, 3), 40.0))
    assert shift_explained(flat, flat) is None  # nothing changed
    assert shift_explained(signature(_texture()[:64, :64]), signature(_texture())) is None
    assert coarse_change(signature(_texture()[:64, :64]), signature(_texture())) is None


STILL = (signature(_texture()), signature(_camera(_texture(), 3)))
SHAKEN = (signature(_camera(_shaken(0, 0), 1)), signature(_camera(_shaken(2, 3), 2)))
SNOW = (signature(_snow(1)), signature(_snow(2)))
FAINT_SNOW = (signature(_faint_snow(1)), signature(_faint_snow(2)))
CUT = (signature(_texture(8)), signature(_texture(9)))
CUT_TO_SNOW = (signature(np.full((SIDE, SIDE, 3), 30.0)), signature(_faint_snow(2)))
HALF_SEEN = np.array([0.55, 0.0, 0.05, 0.40], np.float32)  # program first, static not far


@pytest.mark.parametrize(
    "name, probs, indices, frames, expected",
    [
        ("still, best is static: vetoed", STATIC_LAST, (3,), STILL, (CueEffect.VETO, 0)),
        ("shaken camera, best is static: vetoed", STATIC_LAST, (3,), SHAKEN, (CueEffect.VETO, 0)),
        ("snow, best is static: kept", STATIC_LAST, (3,), SNOW, None),
        ("faint snow, best is static: kept", STATIC_LAST, (3,), FAINT_SNOW, None),
        ("a cut, best is static: kept", STATIC_LAST, (3,), CUT, None),
        ("faint snow, static half-seen: boosted", HALF_SEEN, (3,), FAINT_SNOW, (CueEffect.BOOST, 3)),
        ("still, static half-seen: kept", HALF_SEEN, (3,), STILL, None),
        ("shaken camera, static half-seen: kept", HALF_SEEN, (3,), SHAKEN, None),
        ("a cut into faint snow: kept", HALF_SEEN, (3,), CUT_TO_SNOW, None),
        ("static at zero: nothing to boost", np.array([1, 0, 0, 0], np.float32), (3,), FAINT_SNOW, None),
        ("static too far behind to win: kept", np.array([0.7, 0, 0, 0.3], np.float32), (3,), FAINT_SNOW, None),
        ("still, best is another label: kept", STATIC_LAST[[3, 1, 2, 0]], (3,), STILL, None),
        ("no previous frame: kept", STATIC_LAST, (3,), (None, STILL[1]), None),
        ("other sizes (a model swap): kept", STATIC_LAST, (3,), (STILL[0][:20], STILL[1]), None),
        ("no cue labels: kept", STATIC_LAST, (), STILL, None),
        ("nothing else left: kept", np.array([0, 0, 0, 1], np.float32), (3,), STILL, None),
    ],
)  # fmt: skip
def test_apply_cue(
    name: str,
    probs: np.ndarray,
    indices: tuple[int, ...],
    frames: tuple[np.ndarray | None, np.ndarray],
    expected: tuple[CueEffect, int] | None,
) -> None:
    result = apply_cue(probs, indices, *frames)
    if expected is None:
        assert result is None, name
        return
    assert result is not None, name
    cued, effect = result
    assert (effect, int(cued.argmax())) == expected, name
    assert cued.sum() == pytest.approx(1.0)
    if effect is CueEffect.VETO:
        assert cued[list(indices)].sum() == 0
    else:  # the odds of the cue labels doubled, the others' order kept
        odds = cued[3] / cued[0]
        assert odds == pytest.approx(2 * probs[3] / probs[0], rel=1e-5)


def test_label_indices_ignore_absent_labels() -> None:
    assert label_indices(("program", "black", "color_bars", "static"), ("static",)) == (3,)
    assert label_indices(("cat", "dog"), ("static",)) == ()


@pytest.mark.parametrize(
    "config, expected",
    [
        (ModelConfig(), ("static",)),  # the embedded model
        (ModelConfig(temporal_cue=()), ()),  # --temporal-cue none
        (ModelConfig(model_path="m.keras"), ()),  # a user's model: off unless asked
        (ModelConfig(model_path="m.keras", temporal_cue=("snow",)), ("snow",)),
        (ModelConfig(null_classes=4), ()),
    ],
)
def test_still_labels_default_to_the_embedded_model_only(
    config: ModelConfig, expected: tuple[str, ...]
) -> None:
    assert config.still_labels == expected


# -- through a real server -------------------------------------------------------------------


def _reddish(texture: np.ndarray) -> np.ndarray:
    """The tiny model's "red" with fine detail in every channel (it reads the mean colour)."""
    small = cv2.resize(texture[..., 0], (32, 24), interpolation=cv2.INTER_NEAREST) - 128
    out = np.stack([200 + 0.3 * small, 70 + 0.3 * small, 70 + 0.3 * small], axis=-1)
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "cue, repeated, expected",
    [
        (("red",), True, ["red", "green|blue", "green|blue"]),  # still: vetoed from the 2nd
        (("red",), False, ["red", "red", "red"]),  # redrawn detail (snow): the model's answer
        ((), True, ["red", "red", "red"]),  # --temporal-cue none
    ],
)
def test_server_applies_the_cue_per_stream(
    server_factory: Callable[..., Any],
    tiny_model: Any,
    run_stream: Callable[..., list[Any]],
    frame_pb: Callable[..., Any],
    cue: tuple[str, ...],
    repeated: bool,
    expected: list[str],
) -> None:
    # given a server whose cue takes "red" from frames that repeat their predecessor
    model = ModelConfig(
        model_path=tiny_model.model_path, labels_path=tiny_model.labels_path, temporal_cue=cue
    )
    running = server_factory(model=model)
    frames = [_reddish(_texture(1 if repeated else 10 + i)) for i in range(3)]
    # when one stream sends them
    responses = run_stream(
        running.address,
        [frame_pb(i, f) for i, f in enumerate(frames)],
        window=1,
        delivery=pb.DELIVERY_MODE_LOSSLESS,
    )
    # then
    results = [r for r in responses if not r.HasField("error")]
    assert [r.seq for r in results] == [0, 1, 2]
    for result, want in zip(results, expected, strict=True):
        assert result.frame_label in want.split("|"), [r.frame_label for r in results]
    vetoes = running.server.batcher.stats.cue_changes[CueEffect.VETO]
    assert vetoes == sum("|" in want for want in expected)
    # and another stream is not compared with this one: its first frame keeps the model's answer
    again = run_stream(running.address, [frame_pb(0, frames[-1])], window=1)
    assert [r.frame_label for r in again] == ["red"]


def test_a_bad_frame_between_two_still_ones_is_answered_and_skipped_by_the_cue(
    server_factory: Callable[..., Any],
    tiny_model: Any,
    run_stream: Callable[..., list[Any]],
    frame_pb: Callable[..., Any],
) -> None:
    # given the cue on "red" and a stream: a textured frame, garbage, a huge declared frame,
    # then the first frame again
    model = ModelConfig(
        model_path=tiny_model.model_path, labels_path=tiny_model.labels_path, temporal_cue=("red",)
    )
    running = server_factory(model=model)
    still = _reddish(_texture(1))
    messages = [
        frame_pb(0, still),
        frame_pb(1, still, data=b"garbage"),
        frame_pb(2, still, width=50_000, height=50_000, data=b""),
        frame_pb(3, still),
    ]
    # when
    responses = run_stream(running.address, messages, window=1, delivery=pb.DELIVERY_MODE_LOSSLESS)
    # then the bad frames are answered with errors naming them, in order ...
    assert [r.seq for r in responses] == [0, 1, 2, 3]
    assert [r.HasField("error") for r in responses] == [False, True, True, False]
    assert all(r.error.message for r in responses[1:3])
    # ... and the last frame is compared with the last good one: still, so not "red"
    assert responses[0].frame_label == "red"
    assert responses[3].frame_label in ("green", "blue")
    assert running.server.batcher.stats.cue_changes[CueEffect.VETO] == 1


def test_server_boosts_a_half_seen_label_when_the_stream_changes_like_snow(
    server_factory: Callable[..., Any],
    tiny_model: Any,
    run_stream: Callable[..., list[Any]],
    frame_pb: Callable[..., Any],
) -> None:
    import keras

    # given a field the tiny model calls "red" with "green" close behind (more than half of it)
    model = keras.models.load_model(tiny_model.model_path, compile=False)
    width, height = tiny_model.input_size
    fields = [np.full((height, width, 3), (150, g, 40), np.float32) for g in range(40, 250, 5)]
    probs = model.predict_on_batch(np.stack(fields))
    half_seen = [f for f, p in zip(fields, probs, strict=True) if 0.6 < p[1] / p[0] < 0.85]
    assert half_seen, "no red-green field with green between 0.6 and 0.85 of red"
    field = half_seen[0]
    # and a server whose cue judges "green"
    config = ModelConfig(
        model_path=tiny_model.model_path,
        labels_path=tiny_model.labels_path,
        temporal_cue=("green",),
    )
    running = server_factory(model=config)
    rng = np.random.default_rng(11)
    grain = [np.clip(field + rng.normal(0, 6, field.shape), 0, 255) for _ in range(3)]
    # when one stream sends the field with grain redrawn every frame, then the same frame again
    frames = [*grain, grain[-1]]
    responses = run_stream(
        running.address,
        [frame_pb(i, f.astype(np.uint8)) for i, f in enumerate(frames)],
        window=1,
        delivery=pb.DELIVERY_MODE_LOSSLESS,
    )
    # then the first frame has the model's answer, the redrawn ones are boosted to "green", and
    # the repeated one is a still picture: no boost
    assert [r.frame_label for r in responses] == ["red", "green", "green", "red"]
    assert running.server.batcher.stats.cue_changes == {CueEffect.VETO: 0, CueEffect.BOOST: 2}
