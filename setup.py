"""Builds the optional C extensions ``acid._keylib`` and ``acid._writepath``.

A machine without a working compiler still gets a working, pure-Python
install: the build failure is reported and ``acid.keylib`` falls back to
``acid._keylib_py`` (``acid.keylib.IMPLEMENTATION`` says which one is used).
Set ``ACID_REQUIRE_C=1`` to make a failed build an error instead (CI does):
the extension is then not ``optional`` (setuptools would otherwise turn its
compile errors into warnings) and nothing below catches the failure.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRE_C = os.environ.get("ACID_REQUIRE_C", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """Degrades to a warning when the C twin cannot be built, unless required."""

    def run(self) -> None:
        if REQUIRE_C:
            super().run()
            return
        try:
            super().run()
        except Exception as exc:  # any build failure degrades
            self._warn(exc, "of acid")

    def build_extension(self, ext: Extension) -> None:
        if REQUIRE_C:
            super().build_extension(ext)
            return
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc, ext.name)

    @staticmethod
    def _warn(exc: BaseException, name: str = "acid._keylib") -> None:
        sys.stderr.write(
            f"WARNING: the C extension {name} was not built ({exc}); "
            "using its pure-Python twin.\n"
        )


setup(
    ext_modules=[
        Extension(
            "acid._keylib",
            sources=["acid/_keylib.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=not REQUIRE_C,
        ),
        Extension(
            "acid._writepath",
            sources=["acid/_writepath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=not REQUIRE_C,
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
