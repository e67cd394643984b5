"""The in-process HTTP server: 127.0.0.1 only, a free port, a fresh secret per launch."""

import secrets
import threading

from werkzeug.serving import make_server

from cllm_app.api import create_app
from cllm_app.jobs.runner import JobRunner
from cllm_app.services.studio import Studio

HOST = "127.0.0.1"


class Server:
    """Binds first (so the port is known before anyone is told the URL), then serves in a thread."""

    def __init__(self, studio: Studio, port: int = 0, for_window: bool = False):
        self.secret = secrets.token_urlsafe(32)
        self.app = create_app(studio, self.secret, for_window=for_window)
        self.httpd = make_server(HOST, port, self.app, threaded=True)
        self.port = self.httpd.server_port
        self.app.config["ALLOWED_HOSTS"] = {f"{HOST}:{self.port}"}
        self._thread: threading.Thread | None = None
        # The process that serves the window also runs its background jobs.
        self.runner = JobRunner(studio)

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        # The secret rides in the fragment: the page reads it, and it never reaches a server log.
        return f"{self.origin}/#token={self.secret}"

    def start(self) -> "Server":
        self.runner.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="cllm-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.runner.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.runner.shutdown()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.runner.shutdown()
        if self._thread:
            self._thread.join(timeout=5)
