"""Builds the Cython kernels in cllm_app/kernels/ with -O3 and OpenMP.

Everything else about the package lives in pyproject.toml; setuptools reads
both. Each kernel is a .pyx of its own so a newcomer finds a layer by its name.
"""
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args, link_args = ["/O2", "/openmp"], []
elif sys.platform == "darwin":
    # Apple clang has no bundled OpenMP; kernels still build and run single-threaded.
    compile_args, link_args = ["-O3"], []
else:
    compile_args, link_args = ["-O3", "-fopenmp"], ["-fopenmp"]

kernels = [
    Extension(
        f"cllm_app.kernels.{pyx.stem}",
        [str(pyx)],
        include_dirs=[numpy.get_include()],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted(Path("cllm_app/kernels").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        kernels,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
