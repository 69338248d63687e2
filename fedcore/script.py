"""Loading protocol scripts: a file with ``def main(ctx, **params)``."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fedcore.errors import ConfigError


@dataclass(frozen=True)
class Script:
    """A loaded protocol script: its path, content hash, module and ``main``."""

    path: Path
    sha256: str
    module_name: str
    module: ModuleType
    main: Callable[..., Any]

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Refuse parameters that ``main`` does not take (unless it takes ``**params``)."""
        signature = inspect.signature(self.main)
        kinds = {p.kind for p in signature.parameters.values()}
        if inspect.Parameter.VAR_KEYWORD in kinds:
            return
        accepted = [
            name
            for name, p in list(signature.parameters.items())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        for name in params:
            if name not in accepted:
                raise ConfigError(
                    f"unknown parameter {name!r} for {self.path.name}: it takes "
                    f"{', '.join(accepted) or 'no parameters'}"
                )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_script(path: str | Path) -> Script:
    """Load a protocol script as a module workers can import too.

    Raises:
        ConfigError: the file is missing, does not compile, fails on import, or has no ``main``.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"protocol script {path} does not exist")
    source = path.read_bytes()
    sha = hashlib.sha256(source).hexdigest()
    module_name = f"_fedcore_script_{sha[:16]}"
    module = sys.modules.get(module_name)
    if module is None:
        module = _import(path, source, module_name)
    main = getattr(module, "main", None)
    if not callable(main):
        raise ConfigError(f"{path.name} has no main(ctx, **params) function")
    return Script(path, sha, module_name, module, main)


def _import(path: Path, source: bytes, module_name: str) -> ModuleType:
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ConfigError(f"{path.name} line {exc.lineno}: syntax error: {exc.msg}") from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - the operator's own script, never a peer's
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigError(f"{path.name}: importing it raised {type(exc).__name__}: {exc}") from None
    return module
