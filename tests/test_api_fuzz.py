"""The API under a property-based fuzzer: schemathesis generates requests from /api/openapi.json,
valid ones and ones the description forbids, for every operation, and checks each answer: no
5xx, the status, content type and body the description gives, a refusal (4xx) for a request
it forbids, and for a request it allows, success or a refusal it documents (404 for what does
not exist, 409 for a conflict, 400 only where the operation lists rules its schema cannot state).

Bounded for CI: a fixed number of examples an operation and mode, derandomized (the same
requests every run), no shrinking of failures, no example database."""

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import SECRET

WSGI_HOST = "localhost"  # the Host schemathesis' WSGI client sends
EXAMPLES = 30  # an operation and mode
FUZZ_BUDGET_SECONDS = 240  # the whole run on a loaded 2-core CI machine; about 40 s here

# Operations that are not fuzzed, and why.
EXCLUDED: dict[str, str] = {}

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    deadline=None,  # time is bounded by EXAMPLES and FUZZ_BUDGET_SECONDS; a slow CI must not flake
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
    from cllm_app.services import models

    # A shape the fuzzer draws may be any size up to the limit; creating a 500M-parameter model
    # (2 GB of weights) is a real request but no test of the API.
    monkeypatch.setattr(models, "MAX_PARAMS", 2_000_000)
    return create_app(studio, SECRET, allowed_hosts={WSGI_HOST})


def test_every_operation_holds_up_under_the_fuzzer(api_app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app, headers={"X-CLLM-Token": SECRET})
    schema.config.update(headers={"X-CLLM-Token": SECRET})
    # The token is the app's guard, tested on its own (tests/test_api.py); here it is always sent.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    started = time.monotonic()
    failures, ran = [], 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.label in EXCLUDED:
            continue
        ran += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @given(case=op.as_strategy(generation_mode=mode))
            def fuzz(case):
                case.call_and_validate(excluded_checks=[positive_data_acceptance],
                                       additional_checks=[documented_refusals_only])

            try:
                fuzz()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    failures.append(f"{op.label}: no valid request can be made from its schema")
            except BaseException as e:  # schemathesis reports its findings as an exception group
                if isinstance(e, KeyboardInterrupt):
                    raise
                failures.append(f"{op.label} [{mode.value}]: {e}")
    elapsed = time.monotonic() - started
    assert ran >= 60, f"only {ran} operations were fuzzed"
    assert not failures, f"{len(failures)} finding(s):\n\n" + "\n\n".join(failures)
    # the server still answers after all that
    assert api_app.test_client().get("/api/models", headers={"X-CLLM-Token": SECRET, "Host": WSGI_HOST}).status_code == 200
    assert elapsed < FUZZ_BUDGET_SECONDS, f"the fuzzer took {elapsed:.0f} s"
