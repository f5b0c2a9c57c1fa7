"""Every data source on small data made here, every bad input, and the split."""

import gzip
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from labkit.data import DataConfig, augment_batch, load_data
from labkit.errors import LabError
from labkit.sources import load_source


def test_builtin_has_the_labs_shape(builtin):
    assert (len(builtin.train), len(builtin.test)) == (1260, 540)
    assert builtin.classes == ["0", "1", "2", "3", "4", "5"]
    assert torch.bincount(builtin.test.y).tolist() == [90] * 6
    assert builtin.train.x.shape[1:] == (1, 28, 28) and builtin.train.x.dtype == torch.uint8
    pixels = builtin.train.x.float() / 255
    assert builtin.mean == pytest.approx(pixels.mean().item()) and 0.05 < builtin.mean < 0.3


def test_the_split_ignores_the_training_seed_and_follows_the_split_seed():
    torch.manual_seed(1)
    first = load_data(DataConfig())
    torch.manual_seed(2)
    np.random.seed(2)
    second = load_data(DataConfig())
    other = load_data(DataConfig(split_seed=1))
    assert first.fingerprint == second.fingerprint
    assert first.test_fingerprint != other.test_fingerprint


def test_validation_is_carved_from_the_training_part(builtin):
    data = load_data(DataConfig(val_fraction=0.2))
    assert data.test_fingerprint == builtin.test_fingerprint
    assert (len(data.train), len(data.val), len(data.test)) == (1008, 252, 540)
    assert torch.bincount(data.val.y).tolist() == [42] * 6


def test_batches_normalise_with_training_statistics_and_shuffle_only_training(builtin):
    x, y = next(iter(builtin.batches("test", batch_size=540, augment="shift")))
    assert x.shape == (540, 1, 28, 28) and x.dtype == torch.float32
    expected = (builtin.test.x.float() / 255 - builtin.mean) / builtin.std
    torch.testing.assert_close(x, expected)  # the test split is never augmented or shuffled
    assert torch.equal(y, builtin.test.y)
    train = builtin.batches("train", batch_size=64, seed=0)
    assert len(train) == 20
    first, again = (torch.cat([b[1] for b in train]) for _ in range(2))
    assert not torch.equal(first, again), "each epoch reshuffles"
    assert torch.equal(torch.sort(first).values, torch.sort(builtin.train.y).values)
    assert torch.equal(first, torch.cat([b[1] for b in builtin.batches("train", batch_size=64, seed=0)])), "seeded"


def test_shifts_move_each_image_by_its_own_offset_within_two_pixels():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 14, 14] = 1.0
    batch = image.expand(64, 1, 28, 28)
    shifted = augment_batch(batch, "shift", torch.Generator().manual_seed(0))
    assert shifted.shape == batch.shape and torch.equal(shifted.sum((1, 2, 3)), torch.ones(64))
    where = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28, where % 28
    assert (rows - 14).abs().max() == 2 and (cols - 14).abs().max() == 2  # ±2 px on 28 px images
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10, "offsets differ between images"
    edge = torch.ones(64, 1, 28, 28)
    assert augment_batch(edge, "shift", torch.Generator().manual_seed(0)).min() == 0, "shifted in from black"


def test_flips_mirror_about_half_of_the_images_and_shift_alone_never_does():
    image = torch.zeros(1, 1, 28, 28)
    image[..., :, :10] = 1.0  # bright left third: a mirror image is bright on the right
    batch = image.expand(200, 1, 28, 28)
    right = lambda x: (x[..., 18:].sum((1, 2, 3)) > x[..., :10].sum((1, 2, 3))).float().mean().item()  # noqa: E731
    assert right(augment_batch(batch, "shift", torch.Generator().manual_seed(0))) == 0
    assert 0.3 < right(augment_batch(batch, "shift+flip", torch.Generator().manual_seed(0))) < 0.7


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


# --- raw idx files (MNIST family) --------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: magic (0, 0, uint8 type 0x08, ndim), big-endian sizes, then the data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(folder: Path, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 10
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in [
        ("train-images-idx3-ubyte", x[:20]),
        ("train-labels-idx1-ubyte", y[:20]),
        ("t10k-images-idx3-ubyte", x[20:]),
        ("t10k-labels-idx1-ubyte", y[20:]),
    ]:
        data = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return x, y


def snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "layout",
    ["flat-gz", "flat", "torchvision"],
)
def test_idx_files_read_without_writing_into_their_folder(tmp_path, layout):
    root = tmp_path / "idx"
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    x, y = write_idx(folder, gz=layout == "flat-gz")
    before = snapshot(root)
    images = load_source(f"fashionmnist:{root}", classes=[0, 1, 2], per_class=2)
    assert snapshot(root) == before
    assert images.classes == torchvision.datasets.FashionMNIST.classes[:3]
    assert images.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(images.x[0, 0], torch.from_numpy(x[0]))
    assert torch.equal(images.x[1, 0], torch.from_numpy(x[10]))  # the first two of class 0: images 0 and 10


def test_a_failed_download_says_how_to_work_offline(tmp_path, monkeypatch):
    def offline(self):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(LabError, match=r"could not download KMNIST .*offline\? give a folder of its raw idx files"):
        load_source("kmnist", download_root=tmp_path)


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
    save(tmp / "one" / "only" / "a.png", np.zeros((28, 28), np.uint8))
    save(tmp / "one" / "only" / "b.png", np.zeros((28, 28), np.uint8))
    make_folder(tmp / "few")
    save(tmp / "few" / "rare" / "a.png", np.zeros((28, 28), np.uint8))
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
        ("one class", tmp / "one", "has only one class; a classifier needs at least two"),
        ("too few for a split", tmp / "few", "class 'rare' has 1 image(s); a stratified split needs at least 2"),
        ("npz without y", tmp / "noy.npz", "lacks array(s) y; save images as x and labels as y"),
        ("npz lengths differ", tmp / "mismatch.npz", "x holds 4 images but y has shape (3,)"),
        ("labels out of range", tmp / "range.npz", "labels span 0..3 but there are 2 classes"),
        ("not an npz", tmp / "table.csv", "is a file but not an .npz"),
        ("unknown dataset name", "cifar10", "one of mnist, fashionmnist, kmnist"),
    ]


def test_every_bad_input_is_one_clear_line(tmp_path):
    for name, source, message in bad_inputs(tmp_path):
        with pytest.raises(LabError) as info:
            load_data(DataConfig(source=str(source)))
        text = str(info.value)
        assert message in text, f"{name}: {text}"
        assert "\n" not in text, f"{name}: the message must be one line"


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


def test_a_zip_of_class_folders_is_unpacked_once_beside_it_and_read(tmp_path):
    """How a student brings images to Colab: one uploaded .zip (macOS adds __MACOSX and a wrapping folder)."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as z:
        for c in ("round", "square"):
            for i in range(3):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"shapes/{c}/{i}.png", buffer.getvalue())
        z.writestr("__MACOSX/shapes/round/._0.png", b"\x00\x05\x16\x07")
    images = load_source(tmp_path / "shapes.zip", 28)
    assert images.classes == ["round", "square"] and len(images.y) == 6
    assert (tmp_path / "shapes" / "shapes" / "round" / "0.png").is_file()
    (tmp_path / "shapes" / "shapes" / "round" / "0.png").unlink()  # the student's edit of the unpacked folder
    assert len(load_source(tmp_path / "shapes.zip", 28).y) == 5, "an unpacked folder is used, never overwritten"
