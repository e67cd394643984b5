"""Where everything lives: one data root holds the store, the models, the trash and themes.

The root is the platform's user-data folder, or `CLLM_HOME` when it is set
(tests always set it to a temporary folder).
"""

import os
from pathlib import Path

import platformdirs


def default_root() -> Path:
    env = os.environ.get("CLLM_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir("CLLM Studio", appauthor=False))


class DataRoot:
    """The layout of a data root. Nothing here touches the database."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path).expanduser().resolve() if path else default_root()

    @property
    def db_path(self) -> Path:
        return self.path / "cllm.db"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @property
    def trash_dir(self) -> Path:
        return self.path / "trash"

    @property
    def themes_dir(self) -> Path:
        return self.path / "themes"

    @property
    def research_dir(self) -> Path:
        return self.path / "research"

    @property
    def openai_key_path(self) -> Path:
        return self.path / "openai-key"

    def model_dir(self, model_name: str) -> Path:
        return self.models_dir / model_name

    def ensure(self) -> "DataRoot":
        for folder in (self.models_dir, self.trash_dir, self.themes_dir, self.research_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
