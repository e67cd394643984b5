"""The entry script PyInstaller freezes into `cllm-studio`: the same `cllm` command."""

import multiprocessing

from cllm_app.cli import main

if __name__ == "__main__":
    # A no-op unless a frozen child process was started with the spawn method.
    multiprocessing.freeze_support()
    main()
