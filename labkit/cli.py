"""``python -m labkit``: train, evaluate, summarise, write the hand-in report and grade submissions. Each command
imports torch only when it runs, so --help and argument errors answer at once. Errors the user can fix are one line
on stderr and exit status 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import errno
import signal
import sys
from argparse import ArgumentParser, ArgumentTypeError, Namespace

from labkit.errors import LabError
from labkit.lab import AUGMENTATIONS, BASELINE, BUILTIN, PRESET_NAMES, VIT_PRESET_NAMES
from labkit.settings import RunConfig

DEFAULTS = RunConfig()  # the command line's defaults are the settings cell's


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill as Ctrl-C: kernels, temp files go
    try:
        return args.command(args) or 0  # a command returns None when it succeeds, else its exit status
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C or a kill); nothing half-written was kept", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
        print(f"error: a path's name is too long for the file system ({err.filename}); shorten it", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m labkit", description="The ViT lab's helper commands.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, text: str, run) -> ArgumentParser:
        found = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        found.set_defaults(command=run)
        return found

    train = command("train", "train a preset, print the lab's log and save <student-id>_vit.pth", cmd_train)
    add_data_arguments(train)
    add_run_arguments(train, PRESET_NAMES, "folder for the checkpoint (default: outputs/ at the top of the lab)")
    teacher = "a CNN checkpoint of the same data (train --preset cnn) whose feature maps the ViT learns to imitate"
    train.add_argument("--teacher", metavar="CNN_PTH", help=teacher + " (locality guidance, Li et al., ECCV 2022)")
    train.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default: auto)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")

    evaluate = command("evaluate", "re-measure a saved model's accuracy on the test split of its data", cmd_evaluate)
    evaluate.add_argument("checkpoint", help="a .pth file saved by labkit (or a bare state dict of the reference ViT)")
    add_data_arguments(evaluate, default=None)

    report = command("report", "run the four notebooks and write <student-id>_lab8_report.html", cmd_report)
    report.add_argument("--data", default=DEFAULTS.data, metavar="SOURCE", help=f"as for train (default: {BUILTIN})")
    add_run_arguments(report, VIT_PRESET_NAMES, "folder for the report and checkpoint (default: here)", ".")
    report.add_argument("--pdf", action="store_true", help="also print it to <student-id>_lab8_report.pdf")

    grade = command("grade", "re-score submitted checkpoints on the lab's split, one row each", cmd_grade)
    grade.add_argument("paths", nargs="+", metavar="CHECKPOINT_OR_FOLDER", help=".pth files, or folders of them")
    grade.add_argument("--data", metavar="SOURCE", help=f"the course's data (default: {BUILTIN})")
    mark = f"pass mark: a percentage (60) or a fraction (0.6); default: {BASELINE * 100:g}"
    grade.add_argument("--baseline", type=parse_baseline, default=BASELINE, metavar="MARK", help=mark)
    grade.add_argument("--csv", metavar="FILE", help="also write the table as CSV, for a gradebook")

    autograder = command("autograder", "build a Gradescope autograder.zip that grades as grade does", cmd_autograder)
    autograder.add_argument("--data", default=BUILTIN, metavar="SOURCE", help=f"the course's data (default: {BUILTIN})")
    autograder.add_argument("--baseline", type=parse_baseline, default=BASELINE, metavar="MARK", help="as for grade")
    autograder.add_argument("--points", type=int, default=10, help="the assignment's points (default: 10)")
    autograder.add_argument("--out", default=".", help="folder for autograder.zip (default: here)")

    table = command("summary", "the torchinfo table of a preset, with the lab's columns and depth", cmd_summary)
    table.add_argument("--preset", default=DEFAULTS.preset, choices=PRESET_NAMES, help=f"(default: {DEFAULTS.preset})")
    table.add_argument("--num-classes", type=int, metavar="K", help="classes of the head (default: the preset's)")
    return parser


def add_data_arguments(parser: ArgumentParser, default: str | None = BUILTIN) -> None:
    shown = default or f"{BUILTIN} if the checkpoint was trained on it"
    where = f"a folder of class subfolders, a .zip of one, an .npz, or {BUILTIN} (default: {shown}); data/README.md"
    parser.add_argument("--data", default=default, metavar="SOURCE", help=where)
    parser.add_argument("--classes", type=parse_classes, metavar="I,J,...", help="keep only these class indices")
    parser.add_argument("--per-class", type=int, metavar="N", help="keep the first N images of each class")


def add_run_arguments(parser: ArgumentParser, presets: tuple, out: str, out_default: str | None = None) -> None:
    """The settings of a run (settings.RunConfig) besides its data."""
    parser.add_argument("--preset", default=DEFAULTS.preset, choices=presets, help=f"(default: {DEFAULTS.preset})")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    augment = "override the preset's augmentation; shift+flip adds mirror images, only for classes that survive one"
    parser.add_argument("--augment", choices=AUGMENTATIONS, help=augment)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help=f"training seed (default: {DEFAULTS.seed})")
    parser.add_argument("--student-id", default=DEFAULTS.student_id, help="names the files (default: student_id)")
    parser.add_argument("--out", default=out_default, help=out + "; another run's file there is kept aside")


def parse_classes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a comma-separated list of class indices, e.g. 0,1,2") from None


def parse_baseline(text: str) -> float:
    """The pass mark as a fraction: ``60`` (percent) and ``0.6`` (a fraction) both mean 60%."""
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number; give a percentage such as 60") from None
    if not 0 < value < 100:
        raise ArgumentTypeError(f"{text} is not a pass mark; give a percentage in (0, 100), such as 60")
    return value if value <= 1 else value / 100


def run_config(args: Namespace) -> RunConfig:
    """The run's settings from the command line, checked before torch loads."""
    names = ("student_id", "data", "preset", "epochs", "augment", "seed")
    return RunConfig(**{name: getattr(args, name) for name in names}, outputs=args.out)


def cmd_train(args: Namespace) -> None:
    settings = run_config(args)
    from labkit.run import data_for, train_run

    data = data_for(settings, classes=args.classes, per_class=args.per_class)
    print(f"Data: {data.description}: {len(data.train)} train / {len(data.test)} test, {len(data.classes)} classes")
    train_run(data, settings, device=args.device, progress=not args.no_progress, teacher=args.teacher)


def cmd_evaluate(args: Namespace) -> None:
    from labkit import threads
    from labkit.handin.evaluation import evaluate_checkpoint, fraction

    threads.cap()
    result = evaluate_checkpoint(args.checkpoint, args.data, classes=args.classes, per_class=args.per_class)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    stored = fraction(result.stored_accuracy)
    stored = "n/a" if stored is None else f"{stored * 100:.2f}%"
    accuracy = f"{result.accuracy * 100:.2f}% on {result.test_size} images"
    print(f"{args.checkpoint}: test accuracy {accuracy} (stored: {stored})")


def cmd_report(args: Namespace) -> None:
    settings = run_config(args)
    from labkit.handin.report import make_report

    make_report(settings, pdf=args.pdf)


def cmd_grade(args: Namespace) -> int:
    from labkit import threads
    from labkit.handin.grading import check_csv_target, grade, progress_line, table, write_csv

    threads.cap()
    csv = check_csv_target(args.csv) if args.csv else None
    grades = grade(args.paths, args.data, args.baseline, lambda *row: print(progress_line(*row), file=sys.stderr))
    if not grades:
        raise LabError(f"no .pth files found in {', '.join(args.paths)}; give checkpoint files or folders of them")
    print(table(grades, args.baseline))
    if csv:
        kept = write_csv(grades, csv)
        print(f"wrote {csv}" + (f" (the file there before is kept as {kept})" if kept else ""))
    return 0 if all(g.result == "PASS" for g in grades) else 1


def cmd_autograder(args: Namespace) -> None:
    from labkit.handin.autograder import build

    print(f"wrote {build(args.out, args.data, args.baseline, args.points)}")


def cmd_summary(args: Namespace) -> None:
    import shutil

    from labkit.handin.guard import check_size
    from labkit.models import build_model, fit_to_data
    from labkit.notebook.summary import column_width, render, summarize
    from labkit.presets import get_preset

    config = get_preset(args.preset).model
    if args.num_classes is not None and args.num_classes < 2:
        raise LabError(f"--num-classes {args.num_classes}: a classifier needs at least 2 classes")
    terminal = shutil.get_terminal_size((150, 24)).columns  # piped output keeps the lab's 150 columns
    config = fit_to_data(config, args.num_classes or config.num_classes)
    check_size(config)
    table = render(summarize(build_model(config), col_width=column_width(terminal)))
    print(table)
    if (width := max(len(line) for line in table.splitlines())) > terminal:
        wider = "widen the terminal, or read it with `python -m labkit summary | less -S`"
        print(f"(the table is {width} characters wide, the terminal {terminal}: {wider})", file=sys.stderr)
