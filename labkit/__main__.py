import os
import sys

# `python -m` puts the working folder first on the path: a grader's run from inside a submission folder must not
# import a student's einops.py or torch.py.
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd()) or p == os.path.dirname(os.path.dirname(__file__))]

from labkit.cli import main  # noqa: E402

sys.exit(main())
