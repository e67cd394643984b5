"""The API under a property-based fuzzer: schemathesis generates requests from /api/openapi.json,
valid ones and ones the description forbids, for every operation, and checks each answer: no
5xx, the status, content type and body the description gives, a refusal (4xx) for a request
it forbids, and for a request it allows, success or a refusal it documents (404 for what does
not exist, 409 for a conflict, 400 only where the operation lists rules its schema cannot state).

Bounded for CI: a fixed number of examples an operation and mode, derandomized (the same
requests every run), a deadline an example, a budget for the whole run, no shrinking of
failures, no example database. Nothing is left out: every operation is fuzzed with unknown path
parameters and with ones naming things that exist; the four multipart uploads in positive mode
only (see _is_multipart)."""

import time
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import SECRET

WSGI_HOST = "localhost"  # the Host schemathesis' WSGI client sends
EXAMPLES = 30  # an operation and mode, with path parameters naming things that exist
UNKNOWN_EXAMPLES = 10  # an operation and mode, with path parameters drawn at random (mostly 404s)
FUZZ_BUDGET_SECONDS = 300  # the whole run, on a loaded 2-core CI machine; 40-80 s on the dev machine

# A real model would stream up to max_new_tokens (100,000) tokens an example, minutes for one
# operation: the fuzz app ends each reply after this many, which none of the checks looks at.
MAX_STREAMED_TOKENS = 4

FUZZ_SETTINGS = dict(
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    # One example is a request or two (~10-100 ms); 30 s means something is wrong, not a slow CI.
    deadline=timedelta(seconds=30),
    # Generating bodies for the larger schemas is slow, and an operation whose schema leaves
    # nothing to break has no negative examples to draw: neither is a finding.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def documented_refusals_only(ctx, response, case):
    """For a request the schema allows: success, or a refusal the operation documents (see
    the module docstring); replaces schemathesis' positive_data_acceptance, which knows no
    per-operation 400."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if 200 <= status < 300 or status in (403, 404, 409, 413):
        return None
    if status == 400 and "400" in case.operation.definition.raw.get("responses", {}):
        return None
    raise AssertionError(f"a request the schema allows was refused with {status}: {response.text[:300]}")


@pytest.fixture
def api_app(studio, monkeypatch):
    from cllm_app.api import create_app
    from cllm_app.services import chat, models

    # A shape the fuzzer draws may be any size up to the limit; creating a 500M-parameter model
    # (2 GB of weights) is a real request but no test of the API.
    monkeypatch.setattr(models, "MAX_PARAMS", 2_000_000)
    real_check = chat.check_sampling

    def check_sampling(values):
        sampling = real_check(values)
        sampling.max_new_tokens = min(sampling.max_new_tokens, MAX_STREAMED_TOKENS)
        return sampling

    monkeypatch.setattr(chat, "check_sampling", check_sampling)
    # A bundle is written where its full path says; the fuzzer's paths ("/0", "/temperature")
    # land under this test's own folder instead of the machine's root (the checks stay the same).
    from cllm_app.services import bundles

    real_folder = bundles._folder
    root = studio.root.path.parent / "fuzz-root"
    root.mkdir(exist_ok=True)
    monkeypatch.setattr(bundles, "_folder", lambda path, what: root / real_folder(path, what).relative_to("/"))
    # The change feed streams until the window goes away; closed, GET /api/events answers its
    # ready event and ends, so the fuzzer can read whole responses.
    studio.events.close()
    return create_app(studio, SECRET, allowed_hosts={WSGI_HOST})


def real_things(studio, op, n: int) -> dict:
    """Path parameters that name things that exist, made fresh for each operation and mode (a
    rename or delete among its examples leaves the rest a 404, and the next pass its own)."""

    wanted = {p.name for p in op.path_parameters}
    model = f"fuzz{n}"
    studio.models.create(model, n_layer=1, n_head=2, n_embd=16, block_size=16)
    entry = studio.queue.add_text(model, "the quick brown fox jumps over the lazy dog. " * 40, origin="fuzz",
                                  source_kind="text")["added"]
    values = {"model_name": model, "entry_id": entry["id"]}
    if "conversation_id" in wanted:
        values["conversation_id"] = studio.chat.create(model, "a talk")["id"]
    if "note_name" in wanted:
        values["note_name"] = studio.notes.create(f"fuzz{n}.md", "# a note\n")["note_name"]
    if "job_id" in wanted:
        values["job_id"] = studio.training.start(model, {})["id"]
    if "crawl_id" in wanted:
        values["crawl_id"] = studio.crawls.start(model, {"start_urls": ["http://127.0.0.1:9/"]})["id"]
    if "model_id" in wanted:
        studio.models.create(f"gone{n}", n_layer=1, n_head=2, n_embd=16, block_size=16)
        values["model_id"] = studio.models.delete(f"gone{n}", confirm=True)["id"]
    return {k: v for k, v in values.items() if k in wanted}


def _fuzz(op, mode, examples: int, path_parameters: dict | None = None) -> str | None:
    """One operation in one mode; the finding, if any."""

    @settings(max_examples=examples, **FUZZ_SETTINGS)
    @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def fuzz(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance],
                               additional_checks=[documented_refusals_only])

    try:
        fuzz()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            return "no valid request can be made from its schema"
    except BaseException as e:  # schemathesis reports its findings as an exception group
        if isinstance(e, KeyboardInterrupt):
            raise
        return str(e)
    return None


def _is_multipart(op) -> bool:
    """A multipart form is text on the wire: the negative values schemathesis puts in its fields
    (a boolean, an object) arrive as text the schema allows, so negative mode finds only itself.
    Missing files are refused with their own codes (tests/test_api_queue.py, test_api_research.py)."""
    body = op.definition.raw.get("requestBody", {})
    return "multipart/form-data" in body.get("content", {})


def test_every_operation_holds_up_under_the_fuzzer(api_app, studio):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app, headers={"X-CLLM-Token": SECRET})
    schema.config.update(headers={"X-CLLM-Token": SECRET})
    # The token is the app's guard, tested on its own (tests/test_api.py); here it is always sent
    # (schemathesis' ignored_auth check still sends some requests without it and expects a 403).
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    started = time.monotonic()
    failures, operations, made = [], 0, 0
    for result in schema.get_all_operations():
        op = result.ok()
        if time.monotonic() - started > FUZZ_BUDGET_SECONDS:
            failures.append(f"out of time (over {FUZZ_BUDGET_SECONDS} s) before {op.label}")
            break
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and _is_multipart(op):
                continue
            if op.path_parameters:
                finding = _fuzz(op, mode, UNKNOWN_EXAMPLES)
                if finding:
                    failures.append(f"{op.label} [{mode.value}, unknown path parameters]: {finding}")
                made += 1
                finding = _fuzz(op, mode, EXAMPLES, real_things(studio, op, made))
            else:
                finding = _fuzz(op, mode, EXAMPLES)
            if finding:
                failures.append(f"{op.label} [{mode.value}]: {finding}")
    assert not failures, f"{len(failures)} finding(s):\n\n" + "\n\n".join(failures)
    assert operations >= 60, f"only {operations} operations were found in the description"
    # the server still answers after all that
    answer = api_app.test_client().get("/api/models", headers={"X-CLLM-Token": SECRET, "Host": WSGI_HOST})
    assert answer.status_code == 200
