"""What a change event carries: the state now of every model, job and crawl the change
touched, as the API shows them, so each open window's one store of models (static/js/store.js)
takes them from the event and every tab shows the same numbers.

Built once per change in the server's events thread (services/events.py), however many
windows follow the feed. Loss points and queue items are not carried (a training run adds
thousands): the event says they changed, and the store asks for what it shows.
"""

from cllm_app.services import crawls
from cllm_app.services.jobs import describe as describe_job
from cllm_app.store import Crawl, Job, LanguageModel
from cllm_app.store.schema import ACTIVE_JOB_STATES

MODEL_TOPICS = {"models", "queue", "jobs"}  # a model's summary shows its queue counts and whether a job holds it
JOB_TOPICS = {"jobs", "progress"}
# A crawl's counts move with its pages (its job's progress, the queue), not with its own row.
CRAWL_TOPICS = {"crawls", "progress", "queue"}
RECENT_JOBS = 20  # a model's newest jobs looked at for the latest of each kind


class Changes:
    def __init__(self, models):
        self.models = models

    def describe(self, topics: list[str], model_ids: list[int]) -> dict:
        """{"models": [...], "jobs": [...], "crawls": [...]} for the models the change touched;
        a model that is gone (deleted, or in the trash) is {"id": N, "deleted": true}."""
        out = {}
        if MODEL_TOPICS & set(topics):
            out["models"] = [self.model(i) for i in model_ids]
        if JOB_TOPICS & set(topics):
            out["jobs"] = [job for i in model_ids for job in jobs_of(i)]
        if CRAWL_TOPICS & set(topics):
            out["crawls"] = [c for c in (latest_crawl(i) for i in model_ids) if c is not None]
        return out

    def model(self, model_id: int) -> dict:
        row = LanguageModel.get_or_none(LanguageModel.id == model_id)
        if row is None or row.deleted_at is not None:
            return {"id": model_id, "deleted": True}
        return self.models.describe(row, detail=False)


def jobs_of(model_id: int) -> list[dict]:
    """The model's active jobs and its newest job of each kind (what the tabs show of it)."""
    recent = list(Job.select().where(Job.model == model_id).order_by(Job.id.desc()).limit(RECENT_JOBS))
    kinds: set[str] = set()
    chosen = []
    for job in recent:
        if job.state in ACTIVE_JOB_STATES or job.kind not in kinds:
            chosen.append(job)
            kinds.add(job.kind)
    return [describe_job(j) for j in chosen]


def latest_crawl(model_id: int) -> dict | None:
    """The model's crawl under way (a resumed older one too), else its newest."""
    of_model = Crawl.model == model_id
    live = Crawl.select().where(of_model & Crawl.state.in_(crawls.LIVE_STATES)).order_by(Crawl.id.desc())
    crawl = next((c for c in live if crawls.state_of(c) != "interrupted"), None)
    crawl = crawl or Crawl.select().where(of_model).order_by(Crawl.id.desc()).first()
    return crawls.describe(crawl) if crawl is not None else None
