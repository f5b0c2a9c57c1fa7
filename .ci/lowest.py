"""Print pip constraints that pin every lower bound the project declares (`name>=v` becomes `name==v`).

CI installs the requirements once more under these constraints, so the oldest versions the project claims to
support are the ones it tests. The bounds live in pyproject.toml only; this reads them from there.
"""

import re
from pathlib import Path

import tomllib

project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
for requirement in requirements:
    match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+?)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement.split("#")[0].strip())
    if match:
        print(f"{match[1]}=={match[3]}")
