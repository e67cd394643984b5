"""/api/jobs and training: start, watch and stop background jobs; a model's loss history."""

import io

from flask import Blueprint, jsonify, request, send_file

from cllm_app import training_settings
from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.services import engines

bp = Blueprint("jobs", __name__, url_prefix="/api")


@bp.post("/models/<path:model_name>/train")
def train(model_name):
    """Save the training settings given and queue a training job (continues from the last checkpoint)."""
    body = json_body("training settings")
    new_cycle = body.pop("new_cycle", False)  # how to train, not a setting the model keeps
    return jsonify(studio().training.start(model_name, body, new_cycle=new_cycle)), 202


@bp.get("/training-settings")
def list_training_settings():
    """The training settings every model has: name, type, default, range and help (the Training tab's form)."""
    return {"settings": [s.as_json() for s in training_settings.SETTINGS]}


@bp.get("/engines")
def list_engines():
    """The engines that train here: built-in always, PyTorch with its devices where installed (`refresh=1` looks again)."""
    return engines.engines(refresh=request.args.get("refresh") in ("1", "true"))


@bp.get("/jobs")
def list_jobs():
    """Jobs, newest first; `model_name` and `active=1` narrow the list."""
    active = request.args.get("active") in ("1", "true")
    return {"jobs": studio().jobs.list(request.args.get("model_name"), active=active)}


@bp.get("/jobs/<int:job_id>")
def get_job(job_id):
    """One job's state, progress and detail."""
    return studio().jobs.get(job_id)


@bp.post("/jobs/<int:job_id>/stop")
def stop_job(job_id):
    """Cancel a queued job, or ask a running one to checkpoint and stop."""
    return studio().jobs.stop(job_id)


@bp.get("/models/<path:model_name>/loss-history")
def loss_history(model_name):
    """Loss points after `since_step`, with markers (resumed, data added, layers grown)."""
    since = request.args.get("since_step", "0")
    return studio().training.history(model_name, since)


@bp.get("/models/<path:model_name>/loss-history.csv")
def loss_history_csv(model_name):
    """Every loss point as a CSV file (step, epoch, train_loss, val_loss, learning_rate, tokens_per_sec, time)."""
    name, text = studio().training.history_csv(model_name)
    # send_file writes the name as RFC 6266 asks: an ASCII filename and, for any other letters, filename*.
    return send_file(io.BytesIO(text.encode("utf-8")), mimetype="text/csv", as_attachment=True,
                     download_name=f"{name}-loss-history.csv", max_age=0)
