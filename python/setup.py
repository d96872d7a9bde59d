"""Builds gauge_attn._C, the operators of python/csrc/ops.cpp, from the library's headers.

The headers are those of this checkout (../include); Eigen is the system's (EIGEN3_INCLUDE_DIR, or
/usr/include/eigen3 as Debian's libeigen3-dev installs it). The extension uses CPython's limited API
(3.9), so one wheel serves every Python from 3.9 on; OpenMP parallelises the library's loops and
resolves to the libgomp that torch has already loaded. ops.cpp and the headers also go into the
package (gauge_attn/jit/), from which it builds specs other than the five named ones on demand.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from torch.utils.cpp_extension import BuildExtension, CppExtension

here = Path(__file__).resolve().parent
include = here.parent / "include"
eigen = Path(os.environ.get("EIGEN3_INCLUDE_DIR", "/usr/include/eigen3"))
for path, what in ((include / "gauge_attn" / "attention.hpp", "the gauge_attn headers"),
                   (eigen / "Eigen" / "Core", "Eigen (set EIGEN3_INCLUDE_DIR)")):
    if not path.exists():
        raise RuntimeError(f"gauge_attn: {what} not found at {path}; build from a checkout of the repository")



class BuildPy(build_py):
    """Copies ops.cpp and the library's headers into the package, as gauge_attn/jit/."""

    def run(self):
        super().run()
        jit = Path(self.build_lib) / "gauge_attn" / "jit"
        shutil.copytree(include, jit / "include", dirs_exist_ok=True)
        shutil.copy2(here / "csrc" / "ops.cpp", jit / "ops.cpp")


setup(
    ext_modules=[
        CppExtension(
            "gauge_attn._C",
            ["csrc/ops.cpp"],
            include_dirs=[str(include), str(eigen)],
            depends=sorted(os.path.relpath(p, here) for p in include.rglob("*.hpp")),
            extra_compile_args=["-O3", "-fopenmp", "-DPy_LIMITED_API=0x03090000"],
            extra_link_args=["-fopenmp"],
            py_limited_api=True,
        )
    ],
    cmdclass={"build_ext": BuildExtension, "build_py": BuildPy},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
