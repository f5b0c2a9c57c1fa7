"""Where images come from: folders (mixed sizes, modes, formats; hidden names, links), zips (read in place,
checked before reading), .npz files (checked by kind and from their headers), and one
clear line for every bad source."""

import io
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import labkit.sources as sources_module
from labkit.data import DataConfig, load_data
from labkit.errors import LabError
from labkit.sources import load_source

# --- image folders ----------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def make_folder(root: Path) -> Path:
    """Three classes in mixed sizes, modes and formats, plus files that are not images."""
    rng = np.random.default_rng(0)
    for i in range(4):
        save(root / "cat" / f"{i}.png", rng.integers(0, 255, (32, 40), dtype=np.uint8))  # L, not square
        save(root / "dog" / f"{i}.jpg", rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))  # RGB JPEG
        save(root / "owl" / f"{i}.bmp", rng.integers(0, 255, (28, 28, 3), dtype=np.uint8))  # RGB BMP
    save(root / "owl" / "deep.png", np.full((16, 16), 65535, dtype=np.uint16))  # 16-bit, white
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    return root


def test_image_folder_of_mixed_sizes_modes_and_formats_says_what_they_were(tmp_path):
    images = load_source(make_folder(tmp_path / "lab"), image_size=28)
    assert images.classes == ["cat", "dog", "owl"]
    assert images.x.shape == (13, 1, 28, 28) and images.x.dtype == torch.uint8
    assert torch.bincount(images.y).tolist() == [4, 4, 5]
    assert "1 non-image files skipped" in images.description
    assert images.stored == "BMP, JPEG, PNG, 16×16 to 50×50 px, grayscale, colour, 16-bit grayscale"
    assert images.stored_values == (4 * 40 * 32 + 3 * (4 * 50 * 50 + 4 * 28 * 28) + 16 * 16) / 13  # colour: 3 each
    white = images.x[images.y == 2][-1]  # deep.png sorts after 0-3.bmp in owl/
    assert white.min() == 255, "16-bit white must stay white, not be clipped or wrapped"


def test_image_folder_resizes_to_the_requested_size(tmp_path):
    assert load_source(make_folder(tmp_path / "lab"), image_size=16).x.shape[-2:] == (16, 16)


def test_sixteen_bit_images_keep_their_contrast(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    save(tmp_path / "lab" / "a" / "ramp.png", ramp)
    save(tmp_path / "lab" / "b" / "flat.png", np.zeros((8, 8), np.uint8))
    x = load_source(tmp_path / "lab", image_size=64).x[0, 0]
    assert x.min() == 0 and x.max() == 255 and 100 < x.float().mean() < 155


def images(folder: Path, n: int = 4, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), value + i, dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.hostile
def test_hidden_folders_and_macos_zip_folders_are_ignored(tmp_path):
    images(tmp_path / "cat")
    images(tmp_path / "dog", value=100)
    images(tmp_path / ".ipynb_checkpoints", n=2)  # JupyterLab makes it at the root
    (tmp_path / ".empty_hidden").mkdir()
    images(tmp_path / "cat" / ".thumbnails", n=3)  # hidden inside a class: not images of the class
    (tmp_path / "__MACOSX" / "cat").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    found = load_source(tmp_path, 8)
    assert found.classes == ["cat", "dog"] and torch.bincount(found.y).tolist() == [4, 4]


@pytest.mark.hostile
def test_a_symlink_loop_inside_a_class_reads_each_file_once(tmp_path):
    images(tmp_path / "cat")
    images(tmp_path / "dog", value=100)
    os.symlink("..", tmp_path / "cat" / "up")  # back to the root, and so into dog and into itself
    os.symlink(tmp_path / "cat" / "0.png", tmp_path / "cat" / "again.png")
    found = load_source(tmp_path, 8)
    assert torch.bincount(found.y).tolist() == [4, 4] and "repeated links skipped" in found.description


@pytest.mark.hostile
def test_a_looping_link_as_the_data_root_is_one_line(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(LabError, match="symbolic link that loops"):
        load_source(tmp_path / "loop")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


@pytest.mark.hostile
def test_a_decompression_bomb_and_a_disguised_format_are_one_line_naming_the_file(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / name / "0.png")
    (tmp_path / "a" / "bomb.png").write_bytes(png_header(30000, 30000))
    with pytest.raises(LabError, match=r"image .*bomb.png declares more than .* pixels"):
        load_source(tmp_path, 8)
    (tmp_path / "a" / "bomb.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    with pytest.raises(LabError, match=r"bomb.png: not a PNG, JPEG, BMP image"):
        load_source(tmp_path, 8)


# --- npz ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 28, 28), (12, 1, 28, 28)])
def test_npz_with_or_without_a_channel_axis(tmp_path, shape):
    x = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(12) % 3, classes=np.array(["a", "b", "c"]))
    images = load_source(tmp_path / "d.npz")
    assert images.classes == ["a", "b", "c"]
    assert torch.equal(images.x, torch.from_numpy(x.reshape(12, 1, 28, 28)))


def test_npz_floats_in_unit_range_and_other_sizes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 32, 32), np.float32), y=np.array([0, 1, 0, 1]))
    images = load_source(tmp_path / "d.npz", image_size=28)
    assert images.classes == ["0", "1"] and images.x.shape == (4, 1, 28, 28) and images.x.min() == 255


@pytest.mark.hostile
@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.full((6, 8, 8), np.nan), np.arange(6) % 2, "NaN or infinite"),
        (np.full((6, 8, 8), np.inf), np.arange(6) % 2, "NaN or infinite"),
        (np.full((6, 8, 8), 300, dtype=np.int32), np.arange(6) % 2, "give 8-bit pixels"),
        (np.zeros((6, 8, 8), dtype=np.uint8), np.array([0, 6] * 3), "not 0..K-1"),
        (np.zeros((6, 8, 8), dtype=np.complex64), np.arange(6) % 2, "dtype complex64"),
    ],
)
def test_npz_pixels_and_labels_are_checked_by_kind(tmp_path, x, y, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LabError, match=message):
        load_source(tmp_path / "d.npz", 8)


def test_boolean_npz_images_become_black_and_white(tmp_path):
    x = np.zeros((4, 8, 8), dtype=bool)
    x[:, :4] = True
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(4) % 2)
    assert set(load_source(tmp_path / "d.npz", 8).x.unique().tolist()) == {0, 255}


@pytest.mark.hostile
def test_truncated_npz_is_one_line(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.arange(4) % 2)
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(LabError, match="cannot read .*: not an .npz file, or a damaged one"):
        load_source(tmp_path / "d.npz", 8)


@pytest.mark.hostile
def test_npz_arrays_that_declare_more_than_they_hold_are_refused_from_their_headers(tmp_path):
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (1_000_000, 1000, 1000)}
        )
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(100))
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(4, dtype=np.int64))
        z.writestr("y.npy", buffer.getvalue())
    with pytest.raises(LabError, match=r"x.npy declares a \(1000000, 1000, 1000\) array of 931.3 GiB"):
        load_source(path, 8)


@pytest.mark.hostile
@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((4, 0, 0), dtype=np.uint8), np.arange(4) % 2, r"x has shape \(4, 0, 0\)"),
        (np.zeros((4, 8, 8), dtype=np.uint8), np.array([0, 1, 2**40, 1]), r"labels \[0, 1, 1099511627776\]"),
    ],
)
def test_empty_images_and_huge_labels_are_one_line_at_once(tmp_path, x, y, message):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LabError, match=message):
        load_source(tmp_path / "d.npz", 8)


@pytest.mark.hostile
def test_a_pipe_named_npz_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "x.npz")
    with pytest.raises(LabError, match="is a named pipe"):
        load_source(tmp_path / "x.npz", 8)


# --- zips --------------------------------------------------------------------------------------


def test_a_zip_of_class_folders_is_read_in_place_and_nothing_is_unpacked(tmp_path):
    """How a student brings images to Colab: one uploaded .zip (macOS adds __MACOSX and a wrapping folder)."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as z:
        for c in ("round", "square"):
            for i in range(3):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"shapes/{c}/{i}.png", buffer.getvalue())
        z.writestr("__MACOSX/shapes/round/._0.png", b"\x00\x05\x16\x07")
        z.writestr("shapes/round/notes.txt", b"not an image")
    images = load_source(tmp_path / "shapes.zip", 28)
    assert images.classes == ["round", "square"] and len(images.y) == 6
    assert "1 non-image files skipped" in images.description
    assert [p.name for p in tmp_path.iterdir()] == ["shapes.zip"]


def image_zip(path: Path, classes: dict[str, int], **entries) -> Path:
    """A zip of class folders of small PNGs, and any extra entries (name: bytes)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, n in classes.items():
            for i in range(n):
                buffer = io.BytesIO()
                Image.fromarray(np.full((8, 8), (30 * i) % 256, dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"{name}/{i}.png", buffer.getvalue())
        for name, data in entries.items():
            z.writestr(name, data)
    return path


@pytest.mark.hostile
def test_upper_case_zip_and_npz_names_are_read(tmp_path):
    assert load_source(image_zip(tmp_path / "UPPER.ZIP", {"a": 2, "b": 2}), 8).classes == ["a", "b"]
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4) % 2)
    (tmp_path / "d.npz").rename(tmp_path / "D.NPZ")
    assert len(load_source(tmp_path / "D.NPZ", 8).y) == 4


@pytest.mark.hostile
def test_a_zip_that_would_unpack_too_far_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(sources_module, "MAX_SOURCE_BYTES", 100_000_000)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/zeros.png", bytes(150_000_000))  # 150 MB of zeros in about 150 KB
    with pytest.raises(LabError, match="would unpack to 0.1 GiB, over the 0 GiB"):
        load_source(path, 8)


@pytest.mark.hostile
def test_encrypted_and_unknown_compression_entries_are_one_line(tmp_path):
    locked = image_zip(tmp_path / "locked.zip", {"a": 2, "b": 2})
    data = bytearray(locked.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" bit of every entry
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    locked.write_bytes(bytes(data))
    with pytest.raises(LabError, match="is password-protected"):
        load_source(locked, 8)
    odd = image_zip(tmp_path / "odd.zip", {"a": 2, "b": 2})
    data = bytearray(odd.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99: unknown
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset : start + offset + 2] = struct.pack("<H", 99)
            start += 4
    odd.write_bytes(bytes(data))
    with pytest.raises(LabError, match="zip it again with ordinary"):
        load_source(odd, 8)


@pytest.mark.hostile
@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: np.savez(p, x=np.zeros((2, 8, 8), np.uint8), y=np.arange(2), classes=np.array("ab")), "classes has"),
        (lambda p: p.write_bytes(b"hello"), "not an .npz file, or a damaged one"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p), "holds one array"),
    ],
    ids=["0-d classes", "text file", "one .npy"],
)
def test_npz_edge_cases_are_one_line_and_never_advise_unpickling(tmp_path, write, message):
    write(tmp_path / "d.npz")
    with pytest.raises(LabError, match=message) as info:
        load_source(tmp_path / "d.npz", 8)
    assert "pickle" not in str(info.value)


@pytest.mark.hostile
def test_an_npz_member_that_is_not_an_array_is_named(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.arange(2))
    with zipfile.ZipFile(tmp_path / "d.npz", "a") as z:
        z.writestr("README.txt", b"hello")
    with pytest.raises(LabError, match="member README.txt is not a numpy array"):
        load_source(tmp_path / "d.npz", 8)


# --- bad input: one clear line each ------------------------------------------------------------


def bad_inputs(tmp: Path):
    """(name, source, expected message) for every kind of bad input."""
    (tmp / "flat").mkdir()
    (tmp / "flat" / "a.png").write_bytes(b"")
    make_folder(tmp / "emptyclass")
    (tmp / "emptyclass" / "ghost").mkdir()
    (tmp / "emptyclass" / "ghost" / "readme.txt").write_text("no images")
    make_folder(tmp / "corrupt")
    (tmp / "corrupt" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    np.savez(tmp / "noy.npz", x=np.zeros((4, 28, 28), np.uint8))
    np.savez(tmp / "mismatch.npz", x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(3, int))
    np.savez(
        tmp / "range.npz", x=np.zeros((4, 28, 28), np.uint8), y=np.array([0, 1, 2, 3]), classes=np.array(["a", "b"])
    )
    (tmp / "table.csv").write_text("1,2,3")
    return [
        ("missing path", tmp / "nowhere", "not found (looked in"),
        ("no class subfolders", tmp / "flat", "has no class subfolders; lay the images out as"),
        ("class folder without images", tmp / "emptyclass", "class folder(s) ghost in"),
        ("corrupt image", tmp / "corrupt", f"cannot read image {tmp / 'corrupt' / 'dog' / 'broken.png'}"),
        ("npz without y", tmp / "noy.npz", "lacks array(s) y (it has: x); save it again"),
        ("npz lengths differ", tmp / "mismatch.npz", "x holds 4 images but y has shape (3,)"),
        ("labels out of range", tmp / "range.npz", "labels span 0..3 but there are 2 classes"),
        ("not an npz", tmp / "table.csv", "is not an .npz or a .zip"),
    ]


@pytest.mark.hostile
def test_every_bad_input_is_one_clear_line(tmp_path):
    for name, source, message in bad_inputs(tmp_path):
        with pytest.raises(LabError) as info:
            load_data(DataConfig(source=str(source)))
        text = str(info.value)
        assert message in text, f"{name}: {text}"
        assert "\n" not in text, f"{name}: the message must be one line"


@pytest.mark.hostile
def test_class_subset_and_count_errors_name_the_fix():
    with pytest.raises(LabError, match=re.escape("class indices [12] out of range")):
        load_source("builtin", classes=[0, 12])
    with pytest.raises(LabError, match="fewer than per_class=500; lower it"):
        load_source("builtin", per_class=500)


def test_nothing_is_written_next_to_the_users_images(tmp_path):
    root = make_folder(tmp_path / "lab")
    before = sorted(os.listdir(root))
    load_data(DataConfig(source=str(root)))
    assert sorted(os.listdir(root)) == before
