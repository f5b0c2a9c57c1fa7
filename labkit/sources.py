"""Where images come from (``builtin``, a folder of class subfolders, a ``.zip`` of one, an ``.npz``): each ends
as an :class:`ImageSet` of uint8 N x 1 x S x S images, so the split and the loaders never see where they came from."""

from __future__ import annotations

import io
import math
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib import format as npy
from PIL import Image, UnidentifiedImageError

from labkit.errors import LabError
from labkit.lab import BUILTIN, search_paths

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP")  # what PIL may decode, whatever a file's name says
MAX_SOURCE_BYTES = 4 << 30  # what a zip's images or an .npz's arrays may hold unpacked: far more than any lab set
MODE_WORDS = {"1": "black and white", "L": "grayscale", "LA": "grayscale", "P": "palette colour"}
MODE_WORDS |= dict.fromkeys(("RGB", "RGBA", "CMYK", "YCbCr"), "colour") | {"I": "16-bit grayscale"}


@dataclass
class ImageSet:
    x: torch.Tensor  # uint8, N x 1 x S x S
    y: torch.Tensor  # int64 class indices, N
    classes: list[str]
    description: str  # one line saying where the images came from
    stored: str  # what the images are as stored: format, size in pixels, colour mode
    stored_values: float  # values of a stored image, on average: pixels, times 3 in colour


@dataclass(frozen=True)
class Source:
    kind: str  # "builtin", or "path": a folder, a .zip or an .npz at ``path``
    path: Path | None = None

    def __str__(self) -> str:
        return BUILTIN if self.kind == "builtin" else str(self.path)

    def absolute(self) -> Source:
        """The same source from any working directory."""
        return self if self.path is None else replace(self, path=self.path.expanduser().resolve())


def parse_source(source: str | Path) -> Source:
    text = str(source)
    if not text.strip():
        raise LabError(f"the data source is empty; give a folder of class subfolders, an .npz, or '{BUILTIN}'")
    if text == BUILTIN:
        return Source("builtin")
    places = search_paths(Path(text).expanduser())
    return Source("path", path=next((p for p in places if os.path.lexists(p)), places[0]))


def load_source(
    source: str | Path = BUILTIN, image_size: int = 28, classes: list[int] | None = None, per_class: int | None = None
) -> ImageSet:
    """``source`` at ``image_size``: only ``classes`` (renumbered in that order), the first ``per_class`` of each."""
    text, parsed = str(source), parse_source(source)
    path = parsed.path
    if parsed.kind == "builtin":
        images = _builtin()
    elif not path.exists():
        where = " or ".join(str(p.parent.resolve()) for p in search_paths(Path(text).expanduser()))
        raise LabError(
            f"data source {text!r} is a symbolic link that loops or points nowhere; give the real folder"
            if path.is_symlink()
            else f"data source {text!r} not found (looked in {where}): give an existing folder of class subfolders, "
            f"a .zip of one, an .npz file, or '{BUILTIN}'"
        )
    elif path.is_dir():
        images = _image_folder(path, image_size)
    elif not path.is_file():
        raise LabError(f"data source {text!r} is {file_kind(path)}; give a folder, a .zip or an .npz file")
    elif path.suffix.lower() == ".npz":
        images = _npz(path)
    elif path.suffix.lower() == ".zip":
        images = _image_zip(path, image_size)
    else:
        raise LabError(f"data source {text!r} is not an .npz or a .zip; give one of those or a folder of class folders")
    images = _select(images, classes, per_class)
    if images.x.shape[-2:] != (image_size, image_size):
        images.x = torch.cat([_resize(chunk, image_size) for chunk in images.x.split(1024)])
    return images


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)  # uint8 in, uint8 out


def _builtin() -> ImageSet:
    """6 digit classes x 300 real MNIST images (LeCun, Cortes and Burges; CC BY-SA 3.0): tools/builtin_digits.py."""
    with np.load(resources.files("labkit") / "builtin.npz") as f:
        x, y = torch.from_numpy(f["x"]).unsqueeze(1), torch.from_numpy(f["y"])
    description, stored = "built-in: MNIST digits 0-5, 300 each", "MNIST digits, 28×28 px, grayscale"
    return ImageSet(x, y, [str(d) for d in range(6)], description, stored, 784)


def _select(images: ImageSet, classes: list[int] | None, per_class: int | None) -> ImageSet:
    if classes is None and per_class is None:
        return images
    if per_class is not None and per_class < 1:
        raise LabError(f"per_class={per_class}: keep at least 1 image per class (or leave it out for all)")
    wanted = list(range(len(images.classes))) if classes is None else list(classes)
    if len(set(wanted)) != len(wanted):
        raise LabError(f"classes {wanted} name a class twice; give each class index once, e.g. 0,1,2")
    if bad := [c for c in wanted if not 0 <= c < len(images.classes)]:
        raise LabError(f"class indices {bad} out of range: this data has classes 0..{len(images.classes) - 1}")
    keep = [(images.y == old).nonzero().flatten()[:per_class] for old in wanted]
    for old, idx in zip(wanted, keep, strict=True):
        if per_class is not None and len(idx) < per_class:
            raise LabError(
                f"class {images.classes[old]!r} has only {len(idx)} images, fewer than per_class={per_class}; lower it"
            )
    idx, y = torch.cat(keep), torch.cat([torch.full((len(i),), new) for new, i in enumerate(keep)])
    return replace(images, x=images.x[idx], y=y, classes=[images.classes[c] for c in wanted])


def file_kind(path: Path) -> str:
    """What is at ``path``, in words, for a message about something that is not a regular file or folder."""
    if not os.path.lexists(path):
        return "not found"
    if path.is_symlink() and not path.exists():
        return "a broken link"
    mode = path.stat().st_mode
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))
    kinds += ((stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((f"{kind}, not a file" for test, kind in kinds if test(mode)), "not a regular file")


def _read_image(name: str, file) -> tuple[torch.Tensor, tuple[str, tuple[int, int], str]]:
    """1 x H x W uint8 (16-bit scaled, keeping contrast) and its stored format, size and mode; bombs refused unread."""
    try:
        with Image.open(file, formats=IMAGE_FORMATS) as img:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L"):
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
                gray = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
            else:
                gray = img.convert("L")
            return torch.from_numpy(np.array(gray)).unsqueeze(0), (img.format, img.size, img.mode)
    except Image.DecompressionBombError:
        raise LabError(
            f"image {name} declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, far more than a lab image; "
            "shrink or remove it"
        ) from None
    except UnidentifiedImageError:
        raise LabError(
            f"cannot read image {name}: not a {', '.join(IMAGE_FORMATS)} image; convert it to PNG, or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise LabError(f"cannot read image {name}: {err.__class__.__name__}; remove or replace the file") from None


def visible(name: str) -> bool:
    """Hidden names (.ipynb_checkpoints, macOS's ._* and .DS_Store) and macOS's __MACOSX zip folder are never data."""
    return not name.startswith(".") and name != "__MACOSX"


def _files_under(folder: Path, seen: set[str], outside: set[str]) -> tuple[list[str], int]:
    """Every visible file under ``folder``, each real one once, never in ``outside``; and how many links repeated."""
    files, repeats, visited = [], 0, set()
    for here, dirs, names in os.walk(folder, followlinks=True):
        real_dir = os.path.realpath(here)
        if real_dir in visited or real_dir in outside:
            repeats += 1
            dirs[:] = []
            continue
        visited.add(real_dir)
        dirs[:] = sorted(d for d in dirs if visible(d))
        for name in sorted(n for n in names if visible(n)):
            real = os.path.realpath(os.path.join(here, name))
            if real in seen:
                repeats += 1
            elif os.path.isfile(real):
                seen.add(real)
                files.append(os.path.join(here, name))
    return files, repeats


def _image_folder(root: Path, image_size: int) -> ImageSet:
    subdirs = sorted(p for p in root.iterdir() if visible(p.name) and p.is_dir())
    seen, files, repeats = set(), {}, 0
    classes = {sub: os.path.realpath(sub) for sub in subdirs}
    for sub in subdirs:
        outside = {os.path.realpath(root)} | {real for other, real in classes.items() if other != sub}
        files[sub.name], links = _files_under(sub, seen, outside)
        repeats += links
    notes = (f"{repeats} repeated links skipped",) if repeats else ()
    return _class_images(files, str, image_size, f"image folder {root}", root, notes)


def _image_zip(path: Path, image_size: int) -> ImageSet:
    """Class folders zipped (how images reach Colab), read in place; one folder around the class folders is entered."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [e for e in archive.infolist() if not e.is_dir() and all(map(visible, e.filename.split("/")))]
            if (locked := next((e.filename for e in entries if e.flag_bits & 0x1), None)) is not None:
                raise LabError(f"{path} is password-protected ({locked}); zip the class folders again without one")
            if (unpacked := sum(e.file_size for e in entries)) > MAX_SOURCE_BYTES:
                raise LabError(
                    f"{path} would unpack to {unpacked / 2**30:.1f} GiB, over the {MAX_SOURCE_BYTES >> 30} GiB a lab "
                    "data set may; zip only the class folders of images"
                )
            parts = [e.filename.split("/") for e in entries]
            depth = 0
            while parts and len({p[depth] for p in parts}) == 1 and all(len(p) > depth + 2 for p in parts):
                depth += 1
            files: dict[str, list[str]] = {}
            for p in sorted(parts):
                if len(p) > depth + 1:
                    files.setdefault(p[depth], []).append("/".join(p))
            return _class_images(files, lambda name: io.BytesIO(archive.read(name)), image_size, f"zip {path}", path)
    except (zipfile.BadZipFile, EOFError) as err:
        raise LabError(f"cannot read {path} as a zip ({err}); zip the class folders again") from None
    except NotImplementedError as err:  # a compression method Python's zipfile lacks
        raise LabError(f"cannot read {path} ({err}); zip it again with ordinary (deflate) compression") from None


def _class_images(
    files: dict[str, list[str]], opener: Callable, image_size: int, origin: str, root: Path, notes: tuple[str, ...] = ()
) -> ImageSet:
    """``files`` (class: file names) read by ``opener`` (name -> what PIL opens); non-images are skipped and counted."""
    if not files:
        raise LabError(f"{root} has no class subfolders; lay the images out as {root}/<class name>/<image files>")
    images = {c: [f for f in found if Path(f).suffix.lower() in IMAGE_EXTENSIONS] for c, found in files.items()}
    if empty := [c for c, found in images.items() if not found]:
        raise LabError(
            f"class folder(s) {', '.join(empty)} in {root} hold no {'/'.join(IMAGE_EXTENSIONS)} images; "
            "add images or remove the folder"
        )
    skipped = sum(map(len, files.values())) - sum(map(len, images.values()))
    pictures, stored = [], []
    for name in (f for found in images.values() for f in found):
        picture, info = _read_image(name, opener(name))
        pictures.append(_resize(picture[None], image_size)[0])
        stored.append(info)
    y = torch.tensor([label for label, found in enumerate(images.values()) for _ in found])
    notes = ((f"{skipped} non-image files skipped",) if skipped else ()) + notes
    description = f"{origin} ({len(y)} images{''.join(', ' + n for n in notes)})"
    values = sum(w * h * (3 if MODE_WORDS.get(mode) == "colour" else 1) for _, (w, h), mode in stored) / len(stored)
    return ImageSet(torch.stack(pictures), y, list(images), description, _as_stored(stored), values)


def _as_stored(found: list[tuple[str, tuple[int, int], str]]) -> str:
    """Formats, sizes and colour modes of the images read, in a few words: "JPEG, 512×512 px, colour"."""
    formats = ", ".join(sorted({f for f, _, _ in found}))
    sizes = sorted({size for _, size, _ in found}, key=lambda s: (s[0] * s[1], s))
    shown = [f"{w}×{h}" for w, h in (sizes[0], sizes[-1])]
    size = f"{shown[0]} px" if len(sizes) == 1 else f"{shown[0]} to {shown[1]} px"
    modes = ", ".join(dict.fromkeys(MODE_WORDS.get(m.split(";")[0], m) for _, _, m in found))
    return f"{formats}, {size}, {modes}"


def _npz(path: Path) -> ImageSet:
    """``x``: N x (1 x) H x W pixels (see ``_pixels``); ``y``: N labels 0..K-1; optional ``classes``: K names."""
    advice = "save it again with numpy.savez(path, x=images, y=labels)"
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise LabError(f"{path} holds one array, not the arrays x and y of an .npz; {advice}")
        with loaded as f:
            _check_npz_members(f, path)
            arrays = {k: f[k] for k in f.files}
    except LabError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise LabError(f"cannot read {path}: not an .npz file, or a damaged one; {advice}") from None
    if missing := [k for k in ("x", "y") if k not in arrays]:
        raise LabError(
            f"{path} lacks array(s) {', '.join(missing)} (it has: {', '.join(arrays) or 'nothing'}); {advice}"
        )
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or 0 in x.shape[1:]:
        raise LabError(f"{path}: x has shape {x.shape}; expected N x H x W or N x 1 x H x W grayscale images")
    if y.ndim != 1 or len(y) != len(x):
        raise LabError(f"{path}: x holds {len(x)} images but y has shape {y.shape}; give one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise LabError(f"{path}: y has dtype {y.dtype}; labels must be integers 0..K-1")
    kind, x = x.dtype.name, _pixels(x, path)
    if "classes" in arrays:
        if arrays["classes"].ndim != 1:
            raise LabError(f"{path}: classes has shape {arrays['classes'].shape}; give a list of K class names")
        names = [str(c) for c in arrays["classes"]]
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise LabError(
                f"{path}: labels span {y.min()}..{y.max()} but there are {len(names)} classes; labels must be 0..K-1"
            )
    else:
        present = np.unique(y)
        if len(y) and (present[0] < 0 or len(present) != present[-1] + 1):
            # the first labels missing from 0..K-1, without building that range (a label can be 2**40)
            absent = [int(v) for v in np.setdiff1d(np.arange(min(int(present[-1]) + 1, len(present) + 10)), present)]
            raise LabError(
                f"{path}: labels {present.tolist()[:10]} are not 0..K-1 (missing {absent[:10]}, or negative); "
                "relabel them 0..K-1, or save a classes array naming every class"
            )
        names = [str(c) for c in range(len(present))]
    h, w = x.shape[1:]
    x, y = torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))
    return ImageSet(x, y, names, f"npz file {path}", f"{kind} array, {w}×{h} px, grayscale", h * w)


def _check_npz_members(npz: np.lib.npyio.NpzFile, path: Path) -> None:
    """Every member an array no larger than the file holds (read from its header), together within the limit."""
    total = 0
    for member in npz.zip.infolist():
        with npz.zip.open(member) as f:
            try:
                old = npy.read_magic(f) == (1, 0)
                shape, _, dtype = (npy.read_array_header_1_0 if old else npy.read_array_header_2_0)(f)
            except ValueError:
                raise LabError(
                    f"{path}: member {member.filename} is not a numpy array; keep only the arrays x, y and classes"
                ) from None
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if nbytes > member.file_size or total > MAX_SOURCE_BYTES:
            raise LabError(
                f"{path}: {member.filename} declares a {shape} array of {nbytes / 2**30:.1f} GiB, more than the file "
                f"holds or the {MAX_SOURCE_BYTES >> 30} GiB an .npz may; save it again with numpy.savez"
            )


def _pixels(x: np.ndarray, path: Path) -> np.ndarray:
    """uint8 pixels from an npz's x: bool -> 0/255; integers must be 0-255; floats finite, in [0, 1] or 0-255."""
    kind = x.dtype.kind
    if kind == "b":
        return x.astype(np.uint8) * 255
    if kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise LabError(f"{path}: x holds integers {x.min()}..{x.max()}; give 8-bit pixels 0-255")
        return x.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(x).all():
            raise LabError(f"{path}: x holds {np.count_nonzero(~np.isfinite(x))} NaN or infinite values; fix them")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
        if lo < 0 or hi > 255:
            raise LabError(f"{path}: x spans {lo:g}..{hi:g}; give floats in [0, 1] or 0-255")
        return np.rint(x * 255.0 if hi <= 1.0 else x).astype(np.uint8)
    raise LabError(f"{path}: x has dtype {x.dtype}; give uint8, integer, float or boolean pixels")
