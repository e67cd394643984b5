"""Compute kernels: Cython forward/backward pairs over float32 numpy arrays.

Each kernel lives in a ``<name>.pyx`` of its own (built by ``setup.py`` with
-O3 and OpenMP, once per CPU variant) and writes its results into arrays the
caller passes in. Every kernel has a plain numpy twin in ``reference.py`` with
the same signature and semantics, used by the parity tests and as the readable
specification. ``ops`` gathers the training kernels of the best variant this
CPU runs: the namespace the model takes (``GPT(cfg, kernels=ops)``).

Kernels import nothing from the rest of ``cllm_app``. This package exports
nothing itself; import a kernel by name, e.g. ``from cllm_app.kernels import
ops`` or ``from cllm_app.kernels import layernorm``.

OpenMP waiting. After a parallel loop, GCC's OpenMP runtime keeps its idle
threads spinning (300,000 rounds by default, milliseconds) so the next loop
starts at once. On a machine whose few cores are shared with other work, that
is ruinous: a thread that finished waits spinning on a core while the other
thread of its team, preempted, waits for a core; a training step of config A
took 910 ms instead of 80. So, unless the user set OMP_WAIT_POLICY or
GOMP_SPINCOUNT, idle threads spin for 1,000 rounds (tens of microseconds:
still longer than the Python between two kernel calls) and then sleep. This
must happen before the OpenMP runtime loads, i.e. before the first kernel
module is imported, which is why it is here; if some other library loaded the
runtime first, its settings stay.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"
