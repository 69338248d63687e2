"""``fedcore new DIR --template NAME``: start a project from a ready protocol script.

Templates live in ``fedcore/templates/<name>/``: one protocol script and a federation file.
``new`` copies them into DIR and writes a README saying how to simulate the script and how
to run it between real party daemons.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from fedcore.errors import ConfigError

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATES = ("torch", "numpy", "secure-sum", "vertical-lr", "secureboost")

README = """# {title}

{summary}

Made by `fedcore new {directory} --template {template}`.

## Try it in one machine

```bash
fedcore simulate {directory}/{script} --parties 5          # a progress line, then each party's result
fedcore simulate {directory}/{script} --parties 5 --json   # only the result, as JSON
```

Parameters of `main` are set with `--param KEY=VALUE` (for example `--param rounds=20`).

## Run it between party daemons

```bash
fedcore provision {directory}/federation.toml --out {directory}/kit
fedcore party serve {directory}/kit/alice/party.toml &   # one per party, each on its own machine
fedcore party serve {directory}/kit/bob/party.toml &
fedcore party serve {directory}/kit/carol/party.toml &
fedcore job run {directory}/{script} --config {directory}/kit/alice/party.toml --parties alice,bob,carol
```

Every party runs its own copy of `{script}`; a daemon runs a job only if its copy has the same
SHA-256 and its policy allows it.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("new", help="write a ready protocol script, a federation file and a README")
    p.add_argument("directory", help="the folder to create (must not exist, or be empty)")
    p.add_argument(
        "--template", choices=TEMPLATES, default="torch", help="what the script does (default torch)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    written = create(Path(args.directory), args.template)
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    script = next(p for p in written if p.suffix == ".py")
    sys.stdout.write(f"next: fedcore simulate {script} --parties 5\n")
    return 0


def create(directory: Path, template: str) -> list[Path]:
    """Copy ``template`` into ``directory`` and write its README; return the files written.

    Raises:
        ConfigError: an unknown template, or ``directory`` exists and is not empty.
    """
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}: choose one of {', '.join(TEMPLATES)}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} already exists and is not an empty folder; choose a new one")
    source = TEMPLATES_DIR / template
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for item in sorted(source.iterdir()):
        if item.is_file() and item.suffix in (".py", ".toml"):
            target = directory / item.name
            target.write_text(item.read_text())
            written.append(target)
    script = next(p for p in written if p.suffix == ".py")
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    title, _, rest = doc.partition("\n")
    summary = rest.strip().split("\n\n")[0] if rest.strip() else ""
    readme = directory / "README.md"
    readme.write_text(
        README.format(
            title=title.strip(), summary=summary, directory=directory, template=template, script=script.name
        )
    )
    return [*written, readme]
