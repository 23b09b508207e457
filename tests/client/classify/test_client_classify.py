"""``stream-classify classify`` run in-process against the real server, and its library parts."""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from client import Prediction, ScoredLabel, encode_frame
from client.classify import (
    ClassifySettings,
    Progress,
    classify_cli,
    describe_failure,
    discover_images,
    load_image,
    make_writer,
)
from tests.support import free_port

pytestmark = pytest.mark.timeout(30)

COLOURS = {"red": (220, 30, 30), "green": (30, 220, 30), "blue": (30, 30, 220)}


def run_cli(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: str | None = None,
    monkeypatch: Any = None,
) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="stream-classify classify")
    classify_cli.add_arguments(parser)
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = classify_cli.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def photo_folder(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """Images of several sizes, formats and modes in nested folders, plus a text file to skip.

    Returns the folder and the (relative path, colour) pairs in the order the CLI must output them.
    """
    rng = np.random.default_rng(0)
    layout = [
        ("a_red.png", "red", (40, 30), "RGB"),
        ("b_green.jpg", "green", (640, 480), "RGB"),
        ("c_blue.bmp", "blue", (17, 91), "RGB"),
        ("d_blue_rgba.png", "blue", (64, 64), "RGBA"),
        ("nested/e_red.webp", "red", (100, 60), "RGB"),
        ("nested/f_green_palette.gif", "green", (50, 50), "P"),
    ]
    expected = []
    for name, colour, (width, height), mode in layout:
        noise = rng.integers(-30, 30, (height, width, 3))
        pixels = np.clip(np.asarray(COLOURS[colour]) + noise, 0, 255).astype(np.uint8)
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).convert(mode).save(path)
        expected.append((name, colour))
    (tmp_path / "notes.txt").write_text("not an image, and not listed by extension")
    return tmp_path, expected


def test_help_says_window_defaults_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="stream-classify classify")
    classify_cli.add_arguments(parser)

    help_text = " ".join(parser.format_help().split())

    assert "default 1" in help_text and "unrelated photos" in help_text
    assert parser.parse_args(["x"]).window == 1


@pytest.mark.parametrize(
    ("fmt", "parse"),
    [
        pytest.param(
            "csv",
            lambda out: [
                (r["path"], r["label"], r["top_k"]) for r in csv.DictReader(io.StringIO(out))
            ],
            id="csv",
        ),
        pytest.param(
            "jsonl",
            lambda out: [
                (r["path"], r["label"], r["top_k"]) for r in map(json.loads, out.splitlines())
            ],
            id="jsonl",
        ),
        pytest.param(
            "table",
            lambda out: [(line.split()[0], line.split()[1], line) for line in out.splitlines()[1:]],
            id="table",
        ),
    ],
)
def test_folder_is_classified_in_order(
    server: Any,
    photo_folder: tuple[Path, list[tuple[str, str]]],
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    parse: Any,
) -> None:
    folder, expected = photo_folder

    code, out, err = run_cli(
        [str(folder), "--server", server.address, "--format", fmt, "--top-k", "2"], capsys
    )

    assert code == 0, err
    rows = parse(out)
    assert [
        (Path(path).relative_to(folder).as_posix(), label) for path, label, _ in rows
    ] == expected
    assert all(top_k for _, _, top_k in rows)
    assert "classified 6 image(s)" in err and "images/s" in err
    assert "\r" not in err  # stderr is not a terminal: no progress bar


@pytest.mark.parametrize(
    ("bad_files", "reason"),
    [
        pytest.param(
            {"b_corrupt.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg"},
            "corrupt image",
            id="corrupt-jpeg",
        ),
        pytest.param({"b_empty.png": b""}, "not a readable image", id="empty-png"),
        pytest.param(
            {"b_truncated.png": b"\x89PNG\r\n\x1a\n\x00\x00"},
            "not a readable image",
            id="truncated-png",
        ),
    ],
)
def test_unreadable_files_are_reported_and_the_run_goes_on(
    server: Any,
    photo_folder: tuple[Path, list[tuple[str, str]]],
    capsys: pytest.CaptureFixture[str],
    bad_files: dict[str, bytes],
    reason: str,
) -> None:
    folder, expected = photo_folder
    for name, data in bad_files.items():
        (folder / name).write_bytes(data)

    code, out, err = run_cli([str(folder), "--server", server.address, "--format", "jsonl"], capsys)

    assert code == 1
    assert [json.loads(line)["label"] for line in out.splitlines()] == [
        colour for _, colour in expected
    ]
    for name in bad_files:
        assert f"{folder / name}: {reason}" in err
    assert "1 failed" in err


def test_paths_from_stdin_and_missing_paths(
    server: Any,
    photo_folder: tuple[Path, list[tuple[str, str]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = photo_folder
    listed = f"{folder / 'c_blue.bmp'}\n\n{folder / 'a_red.png'}\n{folder / 'missing.png'}\n"

    code, out, err = run_cli(
        ["-", "--server", server.address, "--format", "csv"],
        capsys,
        stdin=listed,
        monkeypatch=monkeypatch,
    )

    assert code == 1
    assert [row["label"] for row in csv.DictReader(io.StringIO(out))] == ["blue", "red"]
    assert "missing.png: no such file or folder" in err


def test_window_averages_consecutive_images(
    server: Any,
    photo_folder: tuple[Path, list[tuple[str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _ = photo_folder
    paths = [str(folder / "a_red.png")] * 3 + [str(folder / "c_blue.bmp")]

    code, out, _ = run_cli(
        [*paths, "--server", server.address, "--format", "csv", "--window", "4"], capsys
    )

    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [(r["label"], r["frame_label"]) for r in rows][-1] == ("red", "blue")


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_unreachable_server_exits_2_quickly(
    photo_folder: tuple[Path, list[tuple[str, str]]], capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()

    code, out, err = run_cli([str(photo_folder[0]), "--server", address, "--format", fmt], capsys)

    assert code == 2
    assert time.monotonic() - started < 3
    assert out == ""
    assert "cannot reach" in err and address in err


def test_progress_bar_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for out, drawn in ((Terminal(), True), (io.StringIO(), False)):
        progress = Progress(out)
        progress.start(20)
        for _ in range(20):
            progress.update()
        progress.message("x.png: broken")
        progress.close()
        assert ("images/s" in out.getvalue()) is drawn
        assert "x.png: broken\n" in out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_before_the_resize(
    tmp_path: Path, fmt: str, orientation: int
) -> None:
    # given: a wide photo whose EXIF says how to turn it (as cameras write them)
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)
    pixels[:, :200] //= 4  # a dark left half, so a wrong turn changes the result
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(pixels).save(path, format=fmt, exif=exif)
    # when
    frame = load_image(path, (48, 32), "raw", 90)
    # then: the same pixels as decoding, turning a copy and resizing (the reference path)
    with Image.open(path) as image:
        if fmt == "JPEG":
            image.draft(image.mode, (48, 32))
        image.load()
        turned = ImageOps.exif_transpose(image)
    reference = encode_frame(turned, size=(48, 32))
    assert (frame.width, frame.height, frame.encoding) == (48, 32, reference.encoding)
    assert frame.data == reference.data
    assert (turned.width < turned.height) == (orientation >= 5)  # 5-8 swap width and height


def pil_only(path: Path, size: tuple[int, int]) -> Any:
    """The decode path before OpenCV took over plain JPEGs: the reference for identical output."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(image.mode, size)
        image.load()
        return encode_frame(ImageOps.exif_transpose(image), size=size)


def jpeg(width: int, height: int, seed: int = 0, mode: str = "RGB", **options: Any) -> bytes:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width)[None, :, None]
    pixels = np.clip(ramp + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg(300, 200, exif=exif)


SAME_PIXELS = [
    # (file bytes, model input size): every one must give the bytes the PIL-only path gives
    pytest.param(jpeg(640, 480), (224, 224), id="half-scale"),
    pytest.param(jpeg(640, 480), (320, 240), id="exactly-half"),
    pytest.param(jpeg(4000, 3000, quality=80), (224, 224), id="eighth-scale"),
    pytest.param(jpeg(1001, 757), (224, 224), id="quarter-scale-odd-size"),
    pytest.param(jpeg(200, 150), (224, 224), id="smaller-than-input"),
    pytest.param(jpeg(641, 479, subsampling=0), (96, 96), id="444-chroma"),
    pytest.param(jpeg(640, 480, subsampling=1), (224, 224), id="422-chroma"),
    pytest.param(jpeg(640, 480, progressive=True), (224, 224), id="progressive"),
    pytest.param(jpeg(640, 480, quality=100, optimize=True), (224, 224), id="q100-optimized"),
    pytest.param(jpeg(640, 480, mode="L"), (224, 224), id="grey-via-pil"),
    pytest.param(jpeg(640, 480, mode="CMYK"), (224, 224), id="cmyk-via-pil"),
    pytest.param(with_orientation(1), (48, 32), id="orientation-1"),
    pytest.param(with_orientation(6), (48, 32), id="orientation-6-via-pil"),
    pytest.param(jpeg(640, 480) + b"trailing bytes", (224, 224), id="data-after-end-via-pil"),
]


@pytest.mark.parametrize(("data", "size"), SAME_PIXELS)
def test_jpeg_decoding_gives_the_pixels_of_the_pil_only_path(
    tmp_path: Path, data: bytes, size: tuple[int, int]
) -> None:
    path = tmp_path / "image.jpg"
    path.write_bytes(data)

    frame = load_image(path, size, "raw", 90)

    assert frame == pil_only(path, size)


TRUNCATED = jpeg(640, 480)[:40_000]
FAILURES = [
    # (file bytes): must fail exactly as the PIL-only path does
    pytest.param(TRUNCATED, id="truncated"),
    pytest.param(TRUNCATED + b"\xff\xd9", id="cut-short-before-an-end-marker"),
    pytest.param(b"\xff\xd8\xff\xe0 this is not a jpeg\xff\xd9", id="garbage-with-end-marker"),
]


@pytest.mark.parametrize("data", FAILURES)
def test_broken_jpeg_fails_or_decodes_as_the_pil_only_path_does(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(data)
    try:
        expected: Any = pil_only(path, (224, 224))
    except Exception as exc:  # noqa: BLE001 - the reference's failure is the expectation
        expected = exc

    if isinstance(expected, Exception):
        with pytest.raises(type(expected)) as caught:
            load_image(path, (224, 224), "raw", 90)
        assert describe_failure(caught.value) == describe_failure(expected)
    else:
        assert load_image(path, (224, 224), "raw", 90) == expected


def test_a_reader_that_leaves_stops_the_run_quietly(
    server: Any,
    photo_folder: tuple[Path, list[tuple[str, str]]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given stdout whose reader went away after the header (as `classify ... | head -1` does)
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            if self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    parser = argparse.ArgumentParser(prog="stream-classify classify")
    classify_cli.add_arguments(parser)

    # when
    code = classify_cli.run(parser.parse_args([str(photo_folder[0]), "--server", server.address]))

    # then: no traceback, a non-zero status
    assert code == 1
    assert "Traceback" not in capsys.readouterr().err


PREDICTION = Prediction(
    seq=0,
    label="red",
    score=0.91,
    frame_label="blue",
    frame_score=0.5,
    top_k=(ScoredLabel("red", 0.91), ScoredLabel("blue", 0.05)),
    model_version="3",
)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(
            "csv",
            "path,label,score,top_k,frame_label,frame_score\n"
            "a/b.png,red,0.910000,red:0.9100;blue:0.0500,blue,0.500000\n",
            id="csv",
        ),
        pytest.param(
            "jsonl",
            '{"path": "a/b.png", "label": "red", "score": 0.91, "top_k": [{"label": "red", '
            '"score": 0.91}, {"label": "blue", "score": 0.05}], "frame_label": "blue", '
            '"frame_score": 0.5, "model_version": "3"}\n',
            id="jsonl",
        ),
        pytest.param(
            "table",
            "PATH     LABEL             SCORE  TOP-K\n"
            "a/b.png  red              0.9100  red 0.9100, blue 0.0500\n",
            id="table",
        ),
    ],
)
def test_writers_write_one_row_per_image(kind: str, expected: str) -> None:
    out = io.StringIO()

    make_writer(kind, out, [Path("a/b.png")]).write(Path("a/b.png"), PREDICTION)

    assert out.getvalue() == expected


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(lambda: make_writer("xml", io.StringIO(), []), "output format", id="format"),
        pytest.param(lambda: ClassifySettings(window=0), "window", id="window-0"),
        pytest.param(lambda: ClassifySettings(workers=0), "workers", id="workers-0"),
    ],
)
def test_bad_library_settings_are_refused(make: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_discovery_keeps_the_argument_order_and_sorts_folders(
    photo_folder: tuple[Path, list[tuple[str, str]]],
) -> None:
    folder, expected = photo_folder
    named = folder / "notes.txt"  # named explicitly: kept whatever its extension

    found = discover_images([str(named), str(folder), str(folder / "gone.png")], io.StringIO())

    assert found.paths[0] == named
    assert [p.relative_to(folder).as_posix() for p in found.paths[1:]] == [n for n, _ in expected]
    assert [(m.name, m.reason) for m in found.missing] == [
        (str(folder / "gone.png"), "no such file or folder")
    ]
