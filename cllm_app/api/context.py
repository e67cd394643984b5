"""The Studio a request works on: the one the app was built with (create_app puts it in the config)."""

from flask import current_app

from cllm_app.services.studio import Studio


def studio() -> Studio:
    return current_app.config["STUDIO"]
