"""Import the real timm (PyPI) in tests, with a test-only stand-in for torchvision when torchvision cannot load.

Why: timm requires torchvision, and torchvision's wheels fail to load their compiled ops with this CPU torch
(``operator torchvision::nms does not exist``, shared/NOTES.md). timm's model code (``timm.models``, VisionTransformer)
uses no torchvision function; it only needs ``import torchvision`` and a few ``from torchvision... import X`` lines
(data transforms, FrozenBatchNorm2d, feature extraction) to succeed at import time. The stand-in fabricates those
modules: every attribute is an inert placeholder class, so a timm code path that really calls torchvision fails loudly
(a placeholder has no behaviour) instead of silently doing something else. The models themselves are timm's own code.

Install timm with ``pip install --no-deps timm==1.0.31`` (its torchvision requirement would pull another torch build).

    with real_timm() as timm:     # real torchvision if it imports, else the stand-in; a skip when timm is absent
        model = timm.create_model("vit_tiny_patch16_224", num_classes=10)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

import pytest

INSTALL = "pip install --no-deps timm==1.0.31"


class _Placeholder(type):
    """Metaclass of the fabricated names: any attribute of a placeholder is another placeholder (enum members such as
    ``InterpolationMode.BICUBIC``, nested names), and a placeholder can be subclassed or used as a type hint."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{cls.__name__}.{name}", (), {})


class _StandInModule(types.ModuleType):
    __path__: list[str] = []  # a package: ``torchvision.ops.misc`` etc. resolve through the finder below

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _Placeholder(name, (), {"__module__": self.__name__})
        setattr(self, name, value)
        return value


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__version__ = "0.0+test-stand-in"
        return module

    def exec_module(self, module) -> None:
        return None


def _drop_torchvision_modules() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def torchvision_imports() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - RuntimeError on the ops, ImportError when absent
        _drop_torchvision_modules()  # a half-imported torchvision must not shadow the stand-in
        return False
    return True


@contextlib.contextmanager
def real_timm():
    """The real ``timm`` package for the duration of the block, with the stand-in only if torchvision fails to import.

    Skips when timm is not installed, except on CI (``CI`` set), which must have it: there that is a failure. On exit
    the stand-in leaves ``sys.meta_path`` and ``sys.modules``, so no later test (or library probing for torchvision,
    such as transformers) sees a fabricated torchvision.
    """
    if importlib.util.find_spec("timm") is None:
        if os.environ.get("CI"):
            pytest.fail(f"timm is not installed on CI ({INSTALL})")
        pytest.skip(f"timm is not installed ({INSTALL})")
    finder = None if torchvision_imports() else _StandInFinder()
    if finder is not None:
        sys.meta_path.insert(0, finder)
    try:
        yield importlib.import_module("timm")
    finally:
        if finder is not None:
            sys.meta_path.remove(finder)
            _drop_torchvision_modules()
