"""The Studio: one data root, its store and its services, opened together."""

import functools
from pathlib import Path

from cllm_app.paths import DataRoot
from cllm_app.services.chat import Chat
from cllm_app.services.events import Events
from cllm_app.services.jobs import Jobs
from cllm_app.services.models import ModelLifecycle
from cllm_app.services.queue import Queue
from cllm_app.services.research.notes import Notes
from cllm_app.services.streams import Streams
from cllm_app.services.themes import Themes
from cllm_app.store import open_store


class Studio:
    def __init__(self, root: DataRoot | Path | str | None = None):
        self.root = root if isinstance(root, DataRoot) else DataRoot(root)
        self.root.ensure()
        self.database = open_store(self.root.db_path)
        self.models = ModelLifecycle(self.root)
        self.queue = Queue(self.models)
        self.jobs = Jobs(self.models)
        self.themes = Themes(self.root.themes_dir)
        self.notes = Notes(self.root.research_dir, self.models)
        self.themes.install_builtins()
        self.streams = Streams(self)
        self.chat = Chat(self, self.streams)

    @functools.cached_property
    def events(self) -> Events:
        """The feed of the store's changes; its thread starts the first time someone follows it."""
        return Events(self.root.db_path).start()

    def changed(self) -> None:
        """This process has just committed a change: tell the feed's followers now."""
        if "events" in self.__dict__:
            self.events.poke()

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        self.database.close()
