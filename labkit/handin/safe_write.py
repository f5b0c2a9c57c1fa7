"""Writing a file so that nothing is lost: the folder checked before the work that makes the file, the file written
whole or not at all, and a file already at the name kept aside unless it may be replaced.

A write goes to a temp file beside the target first and is moved into place by one rename, holding a lock on the
folder, so a crash, a full disk or another process writing the same name never leaves a broken file or loses one.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from labkit.errors import LabError
from labkit.lab import lab_root

TEMP_STALE = 3600.0  # a temp file this old, or whose process is gone, is the remains of a killed write


def check_writable(path: str | Path) -> Path:
    """Check, before the work that makes it, that a file can be written at ``path``: its folder exists or can be
    made, is a folder, takes new files, and the file name is not too long. A LabError names what is wrong."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise LabError(f"output folder {shown(path.parent)} is a file; give a folder")
    if path.is_dir():
        raise LabError(f"{shown(path)} is a folder; the file needs its name free")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise LabError(f"cannot write {shown(path)} ({err.strerror or err}); choose another output folder") from None
    return path


def shown(path: str | Path) -> str:
    """A path as a user reads it: relative to the working folder when it lies inside it, else to the top of the
    lab's folder (a notebook runs in notebooks/, its checkpoints go to outputs/), else as it is."""
    root = lab_root()
    for base in (Path.cwd(), *([root] if root else [])):
        try:
            return str(Path(path).resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            continue
    return str(path)


def readable_as_new_file(path: str | Path) -> None:
    """Give a file made by mkstemp (mode 0600) the mode a new file gets under the user's umask, so that a grader
    who is another user can read what the student hands in, where the umask allows it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def rescue_folder() -> Path:
    """Where a finished file goes when its own folder fails at the last moment: a per-user folder that outlives the
    run (the system's temp folder if even that cannot be made)."""
    folder = Path.home() / ".cache" / "labkit" / "rescued"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        return Path(tempfile.gettempdir())


def write_whole(
    path: str | Path, write: Callable[[BinaryIO], None], replaceable: Callable[[Path], bool], out: TextIO | None = None
) -> Path | None:
    """Write ``path`` by calling ``write`` on a temp file beside it, then move that into place. A file already at
    ``path`` that ``replaceable`` refuses is first kept under a free timestamped name, which is returned (else
    None), so ``path`` itself never goes missing. A failed write (a full disk, a vanished folder) raises OSError
    and leaves no temp file."""
    path = check_writable(path)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    kept = None
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            except RuntimeError as err:  # torch.save reports a failed write (ENOSPC, EIO) as a RuntimeError
                raise OSError(f"writing {shown(path)} failed: {next(iter(str(err).splitlines()), '')}") from None
        readable_as_new_file(tmp)
        with _locked(path, out or sys.stdout):
            if os.path.lexists(path) and not replaceable(path):
                kept = _keep_aside(path)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return kept


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def _locked(path: Path, out: TextIO):
    """Hold an exclusive lock on ``path``'s folder while inside: one writer at a time decides what to keep aside and
    replaces. The system drops the lock when its process ends, however it ends; without fcntl (Windows), no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"… waiting for another process writing in {shown(path.parent)}", file=out, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _keep_aside(path: Path) -> Path:
    """A copy of the file at ``path`` under a free timestamped name, claimed atomically (a hard link, or a copy
    where links are not supported); ``path`` itself stays in place until the caller replaces it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    for n in itertools.count():
        candidate = path.with_name(f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}")
        try:
            os.link(path, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError:
            try:
                with open(path, "rb") as src, open(candidate, "xb") as dst:
                    shutil.copyfileobj(src, dst)
                return candidate
            except FileExistsError:
                continue
    raise AssertionError("unreachable")


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of this name left by writes that were killed mid-way: their process is gone, or they are
    over an hour old. A temp file of a write still running elsewhere is left alone."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.").split(".")[0]
        try:
            stale = time.time() - tmp.stat().st_mtime > TEMP_STALE or (pid.isdigit() and not _alive(int(pid)))
            if stale:
                tmp.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check elsewhere: the age rules apply
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
