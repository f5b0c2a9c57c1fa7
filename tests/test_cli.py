"""``python -m labkit`` end to end, in a temporary folder, as a user runs it."""

import os
import subprocess
import sys

import pytest
import torch

from labkit.cli import main


def labkit(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short real run of the default command: the built-in data and the fast preset."""
    cwd = tmp_path_factory.mktemp("cli")
    return cwd, labkit("train", "--epochs", "2", "--student-id", "s123", "--no-progress", "--out", "outputs", cwd=cwd)


def test_train_prints_the_labs_log_and_saves_the_checkpoint(trained, lab_log):
    cwd, result = trained
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Data: built-in: MNIST digits 0-5, 300 each: 1260 train / 540 test, 6 classes"
    assert lines[-1] == "✓ Model saved as outputs/s123_vit.pth"
    lab_log("\n".join(lines[1:-1]), epochs=2, steps=20, log_every=10)
    assert (cwd / "outputs" / "s123_vit.pth").is_file()


def test_evaluate_reproduces_the_stored_accuracy(trained):
    cwd, _ = trained
    result = labkit("evaluate", "outputs/s123_vit.pth", cwd=cwd)
    assert result.returncode == 0, result.stderr
    stored = torch.load(cwd / "outputs" / "s123_vit.pth", weights_only=True)["metrics"]["test_accuracy"]
    assert result.stdout.strip() == (
        f"outputs/s123_vit.pth: test accuracy {stored * 100:.2f}% on 540 images (stored: {stored * 100:.2f}%)"
    )
    assert result.stderr == ""


def test_evaluate_warns_when_the_test_split_differs(trained):
    cwd, _ = trained
    result = labkit("evaluate", "outputs/s123_vit.pth", "--per-class", "200", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "warning: its test split differs" in result.stderr


def test_summary_prints_the_reference_table(capsys):
    assert main(["summary", "--preset", "reference"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 5,436,678" in out and "Input Shape" in out and "Kernel Shape" in out


@pytest.mark.hostile
@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "no/such/folder"], "error: data source 'no/such/folder' not found"),
        (["evaluate", "missing.pth"], "error: checkpoint missing.pth not found"),
        (["train", "--student-id", "a/b"], "error: student id 'a/b' cannot name a file"),
        (["train", "--student-id", "a\tb"], "cannot name a file"),
        (["train", "--classes", "0,0"], "must name each class index once"),
        (["train", "--per-class", "-3"], "per_class -3 must be at least 1"),
        (["train", "--per-class", "0"], "per_class 0 must be at least 1"),
        (["train", "--data", ""], "the data source is empty"),
        (["train", "--device", "foo"], "unknown device 'foo'"),
        (["summary", "--num-classes", "1"], "at least 2 classes"),
    ],
)
def test_errors_are_one_line_on_stderr_and_a_nonzero_exit(tmp_path, monkeypatch, capsys, args, message):
    """Inputs the parser accepts but labkit cannot use: one line, nothing written."""
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


@pytest.mark.hostile
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--device", "cuda"]) == 2
    assert "device 'cuda' is not available on this machine" in capsys.readouterr().err


@pytest.mark.hostile
@pytest.mark.parametrize("content, message", [(b"", "an empty file"), (b"hello", "corrupt or truncated")])
def test_evaluate_on_an_empty_or_text_file_is_one_line(tmp_path, capsys, content, message):
    (tmp_path / "s_vit.pth").write_bytes(content)
    assert main(["evaluate", str(tmp_path / "s_vit.pth")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.hostile
def test_a_huge_class_count_for_summary_is_one_line(capsys):
    assert main(["summary", "--num-classes", "1000000000"]) == 2
    assert "1,000,000,000 classes (limit 10,000)" in capsys.readouterr().err


@pytest.mark.parametrize("mark", ["60", "0.6"])
def test_a_baseline_as_percent_or_fraction_means_the_same(trained, capsys, mark):
    cwd, _ = trained
    main(["grade", str(cwd / "outputs"), "--baseline", mark])
    assert "> 60%" in capsys.readouterr().out.splitlines()[0]


def test_a_bad_error_from_the_shell_has_no_traceback(tmp_path):
    result = labkit("evaluate", "missing.pth", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        "error: checkpoint missing.pth not found; give the path of a .pth file saved by labkit\n",
    )


@pytest.mark.parametrize("command", ["train", "evaluate", "summary", "report", "grade"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: python -m labkit " + command)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["train", "--preset", "nope"]])
def test_help_and_argument_errors_import_no_torch(args):
    """Parsing the command line must answer at once: torch takes seconds to import."""
    probe = f"""
import sys
from labkit.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print("torch" in sys.modules, file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stderr.strip().splitlines()[-1] == "False", result.stderr


@pytest.mark.parametrize("columns", [80, 120])
def test_summary_fits_the_terminal_or_says_how_to_read_it(columns):
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "summary"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"COLUMNS": str(columns)},
    )
    width = max(len(line) for line in result.stdout.splitlines())
    assert result.returncode == 0 and (width <= columns or "less -S" in result.stderr), (width, result.stderr)
    assert "Total params: 142,246" in result.stdout


@pytest.mark.hostile
@pytest.mark.parametrize("command", [["evaluate", "{long}.pth"], ["grade", "{long}"], ["train", "--data", "{long}"]])
def test_a_name_longer_than_the_file_system_allows_is_one_line(command, tmp_path, capsys):
    long = str(tmp_path / ("y" * 300))
    assert main([part.format(long=long) for part in command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "too long for the file system" in err and err.count("\n") == 1
