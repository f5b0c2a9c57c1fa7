"""Writing a file whole (a temp file renamed into place under a folder lock), its folder checked first and a file there
kept aside unless replaceable: a crash, a full disk or another writer never leaves a broken file or loses one."""

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
    """``path``, once its folder exists or can be made and takes a new file of that name; else a LabError saying why."""
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
    """``path`` relative to the working folder, else to the lab's top (a notebook runs in notebooks/), else as it is."""
    for base in filter(None, (Path.cwd(), lab_root())):  # no lab's top outside a clone
        try:
            return str(Path(path).resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            continue
    return str(path)


def rescue_folder() -> Path:
    """A per-user folder for a finished file whose own folder fails at the last moment (else the system's temp)."""
    folder = Path.home() / ".cache" / "labkit" / "rescued"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        return Path(tempfile.gettempdir())


def write_whole(
    path: str | Path, write: Callable[[BinaryIO], None], replaceable: Callable[[Path], bool], out: TextIO | None = None
) -> Path | None:
    """``write`` to a temp file moved to ``path``, returning where a file there that ``replaceable`` refuses is kept."""
    path = check_writable(path)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            except RuntimeError as err:  # torch.save reports a failed write (ENOSPC, EIO) as a RuntimeError
                raise OSError(f"writing {shown(path)} failed: {next(iter(str(err).splitlines()), '')}") from None
        mask = os.umask(0)  # mkstemp's 0600 made a new file's mode, so a grader who is another user can read it
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        with _locked(path, out or sys.stdout):
            kept = _keep_aside(path) if os.path.lexists(path) and not replaceable(path) else None
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return kept


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def _locked(path: Path, out: TextIO):
    """One writer at a time in ``path``'s folder: a flock the system drops when its process ends (none on Windows)."""
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
    """A copy of ``path`` under a free timestamped name, claimed atomically (a hard link, else an exclusive copy)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    for n in itertools.count():
        candidate = path.with_name(f"{path.stem}.{stamp}{f'-{n}' if n else ''}{path.suffix}")
        try:
            os.link(path, candidate)
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            try:
                with open(path, "rb") as src, open(candidate, "xb") as dst:
                    shutil.copyfileobj(src, dst)
            except FileExistsError:
                continue
        return candidate


def _remove_stale_temps(path: Path) -> None:
    """Remove this name's temp files left by killed writes (their process gone, or over an hour old), no running one."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.").split(".")[0]
        try:
            if time.time() - tmp.stat().st_mtime > TEMP_STALE or (pid.isdigit() and not _alive(int(pid))):
                tmp.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check elsewhere: the age rules apply
    try:
        with contextlib.suppress(PermissionError, OverflowError):  # another user's, or a pid too large to ask about
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
