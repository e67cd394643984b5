"""The Studio: one data root, its store and its services, opened together.

Every service is an object the Studio holds, and the API, the CLI and the jobs call its
methods: `studio.models.create(...)`, `studio.training.start(...)`. Services are handed the
other services they use, never the Studio itself.
"""

import functools
from pathlib import Path

from cllm_app.paths import DataRoot
from cllm_app.services.bundles import Bundles
from cllm_app.services.changes import Changes
from cllm_app.services.chat import Chat
from cllm_app.services.crawls import Crawls
from cllm_app.services.events import Events
from cllm_app.services.exports import Exports
from cllm_app.services.ingest import Ingest
from cllm_app.services.jobs import Jobs
from cllm_app.services.models import ModelLifecycle
from cllm_app.services.openai_key import OpenAIKey
from cllm_app.services.queue import Queue
from cllm_app.services.recipe import Recipes
from cllm_app.services.recovery import (
    check_writable,
    damaged_store_notice,
    reregister_models,
    write_notice,
)
from cllm_app.services.research import Research
from cllm_app.services.research.notes import Notes
from cllm_app.services.streams import Streams
from cllm_app.services.themes import Themes
from cllm_app.services.training import Training
from cllm_app.store import open_store


class Studio:
    def __init__(self, root: DataRoot | Path | str | None = None, recover: bool = True):
        """`recover`: move a damaged store aside and start a new one (the app and the CLI); a
        job's worker passes False and is refused instead, leaving that to the app."""
        self.root = root if isinstance(root, DataRoot) else DataRoot(root)
        check_writable(self.root)
        self.root.ensure()
        self.database = open_store(self.root.db_path, move_damaged=recover)
        # Things a person must hear about at start (the CLI prints them; they stay in logs/).
        self.notices: list[str] = []
        if self.database.damaged is not None:
            names = reregister_models(self.root, self.database.damaged)
            notice = damaged_store_notice(self.root, self.database.damaged, names)
            write_notice(self.root, notice)
            self.notices.append(notice)
        self.models = ModelLifecycle(self.root)
        self.queue = Queue(self.models)
        self.jobs = Jobs(self.models)
        self.themes = Themes(self.root.themes_dir)
        self.notes = Notes(self.root.research_dir, self.models)
        self.openai_key = OpenAIKey(self.root.openai_key_path)
        self.themes.install_builtins()
        self.training = Training(self.models, self.queue, self.jobs)
        self.recipes = Recipes(self.models, self.queue)
        self.ingest = Ingest(self.models, self.queue, self.jobs)
        self.crawls = Crawls(self.models, self.queue, self.jobs, self.training)
        self.research = Research(self.models, self.training, self.jobs)
        self.bundles = Bundles(self.models, self.training)
        self.streams = Streams(self.models)
        self.chat = Chat(self.models, self.streams)
        self.exports = Exports(self.models, self.chat, self.jobs)

    @functools.cached_property
    def events(self) -> Events:
        """The feed of the store's changes; its thread starts the first time someone follows it."""
        return Events(self.root.db_path, describe=Changes(self.models).describe).start()

    def changed(self) -> None:
        """This process has just committed a change: tell the feed's followers now."""
        if "events" in self.__dict__:
            self.events.poke()

    def close(self) -> None:
        self.streams.shutdown()
        if "events" in self.__dict__:
            self.events.close()
        self.models.close()
        self.database.close()
