"""The Research tab's services: evaluate, compare, inspect, lineage and notes, one module each.
`Research` is what the Studio holds for the first four; notes are `studio.notes`."""

from cllm_app.services.research import compare as _compare
from cllm_app.services.research import evaluate as _evaluate
from cllm_app.services.research import inspect as _inspect
from cllm_app.services.research import lineage as _lineage


class Research:
    def __init__(self, models, training, jobs):
        self.models, self.training, self.jobs = models, training, jobs

    def evaluate(self, model_name: str, body: dict) -> tuple[dict, bool]:
        """Evaluate now, or submit an evaluate job for a large input. Returns (answer, is_job)."""
        return _evaluate.evaluate(self.models, self.training, self.jobs, model_name, body)

    def prepare(self, model_name: str, source: str = "validation", from_model=None, split=None,
                text=None, origin: str | None = None) -> _evaluate.Prepared:
        """What to evaluate, as token documents of the model's tokenizer (the evaluate job's start)."""
        return _evaluate.prepare(self.models, self.training, model_name, source, from_model, split, text, origin)

    def compare(self, model_names) -> dict:
        return _compare.compare(self.models, model_names)

    def inspect(self, model_name: str, prompt, top_k=10, layer=0, head=0) -> dict:
        return _inspect.inspect(self.models, model_name, prompt, top_k, layer, head)

    def lineage(self) -> dict:
        return _lineage.graph(self.models)
