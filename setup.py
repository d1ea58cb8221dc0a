"""Builds the optional C twin ``acid._keylib``.

A machine without a working compiler still gets a working, pure-Python
install: the build failure is reported and ``acid.keylib`` falls back to
``acid._keylib_py`` (``acid.keylib.IMPLEMENTATION`` says which one is used).
Set ``ACID_REQUIRE_C=1`` to make a failed build an error instead (CI does).
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure degrades
            if os.environ.get("ACID_REQUIRE_C"):
                raise
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("ACID_REQUIRE_C"):
                raise
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        sys.stderr.write(
            f"WARNING: the C extension acid._keylib was not built ({exc}); "
            "using the pure-Python key encoder.\n"
        )


setup(
    ext_modules=[
        Extension(
            "acid._keylib",
            sources=["acid/_keylib.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
