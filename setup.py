"""Builds the Cython kernels in cllm_app/kernels/, once per CPU variant.

Everything else about the package lives in pyproject.toml; setuptools reads
both. Each kernel is a .pyx of its own so a newcomer finds a layer by its name.

Runtime CPU dispatch: every kernel .pyx is compiled into several extension
modules from the same source, one per instruction-set level,

    cllm_app.kernels.NAME             portable baseline (-O3; SSE2 on x86-64)
    cllm_app.kernels.x86_64_v3.NAME   -march=x86-64-v3 (AVX2, FMA), x86-64 only
    cllm_app.kernels.x86_64_v4.NAME   -march=x86-64-v4 (AVX-512), with 512-bit vectors preferred

and cllm_app.kernels.ops imports the best one the running CPU supports. No
copies or wrapper files are needed: Cython names a module (and its PyInit_
function) after the Extension's name, whose last component is the file stem,
so only the generated C files must not collide. Each variant is therefore
cythonized into its own directory under build/cython/.

Flags: -O3 and OpenMP everywhere, plus two that change no result (see
VALUE_SAFE below); never -ffast-math.

The x86-64-v4 build is more than a recompile: under __AVX512F__ the GEMM
micro-kernel in _gemm.pxd is a 12 x 32 tile of 16-float vectors (24 accumulators)
instead of AVX2's 6 x 16 in 8-float ones, with every output still one FMA chain
over k in the same order, so its results equal the v3 build's bit for bit. The
tests run it wherever the CPU has AVX-512 (ops.available_variants()); elsewhere it
is built but never chosen.
"""
import platform
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# Neither changes a computed value (unlike -ffast-math, which the kernels must
# not use: it reorders sums and breaks NaN checks). -fno-math-errno: sqrtf need
# not set errno, so it can be one vector instruction. -fno-trapping-math: gcc
# may assume float exceptions do not trap (they never do in a normal process),
# which it needs to turn the selects in exp's range checks into vector blends;
# without it no loop that calls exp is vectorized.
VALUE_SAFE = ["-fno-math-errno", "-fno-trapping-math"]

if sys.platform == "win32":
    compile_args, link_args = ["/O2", "/openmp"], []
elif sys.platform == "darwin":
    # Apple clang has no bundled OpenMP; kernels still build and run single-threaded.
    compile_args, link_args = ["-O3", *VALUE_SAFE], []
else:
    compile_args, link_args = ["-O3", *VALUE_SAFE, "-fopenmp"], ["-fopenmp"]

# (subpackage, extra compile flags). "" is the baseline: cllm_app.kernels itself.
VARIANTS = [("", [])]
if sys.platform != "win32" and platform.machine().lower() in ("x86_64", "amd64"):
    VARIANTS.append(("x86_64_v3", ["-march=x86-64-v3"]))
    VARIANTS.append(("x86_64_v4", ["-march=x86-64-v4", "-mprefer-vector-width=512"]))

KERNEL_DIR = Path("cllm_app/kernels")
COMPILER_DIRECTIVES = {"boundscheck": False, "wraparound": False, "cdivision": True}


def variant_extensions(subpackage: str, flags: list[str]) -> list[Extension]:
    package = "cllm_app.kernels" + (f".{subpackage}" if subpackage else "")
    return [
        Extension(
            f"{package}.{pyx.stem}",
            [str(pyx)],
            include_dirs=[numpy.get_include()],
            extra_compile_args=compile_args + flags,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted(KERNEL_DIR.glob("*.pyx"))
    ]


ext_modules = []
for subpackage, flags in VARIANTS:
    ext_modules += cythonize(
        variant_extensions(subpackage, flags),
        build_dir=f"build/cython/{subpackage or 'baseline'}",
        language_level=3,
        compiler_directives=COMPILER_DIRECTIVES,
    )

setup(ext_modules=ext_modules)
