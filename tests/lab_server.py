"""A JupyterLab server started for a test, on a free port, with its own user settings and runtime folders, so that
what a test sees is what the lab's install gives a new student."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

TOKEN = "lab-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}?token={TOKEN}", timeout=30) as answer:
            return json.load(answer)


@contextmanager
def jupyterlab(root: Path, home: Path):
    """JupyterLab serving ``root``; ``home`` holds the settings and runtime files a student's home folder would. The
    page exposes the app as ``window.jupyterapp``, so that a browser test can run JupyterLab's own commands."""
    port = free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(home / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:  # CI's containers run as root, which JupyterLab refuses without this
        command.append("--allow-root")
    with open(home / "jupyterlab.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}")
    try:
        for _ in range(120):
            try:
                lab.get("/api/status")
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            raise TimeoutError("JupyterLab did not answer in 60 s")
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited: {(home / 'jupyterlab.log').read_text()[-2000:]}")
        yield lab
    finally:
        server.terminate()
        server.wait(timeout=30)
