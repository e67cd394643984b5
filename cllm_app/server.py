"""The in-process HTTP server: 127.0.0.1 only, a free port, a fresh secret per launch."""

import secrets
import threading

from werkzeug.serving import make_server

from cllm_app.api import create_app
from cllm_app.instance import InstanceLock
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
        # The process that serves the window also runs its background jobs: one such per data root.
        self.runner = JobRunner(studio)
        self.lock = InstanceLock(studio.root.path)

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        # The secret rides in the fragment: the page reads it, and it never reaches a server log.
        return f"{self.origin}/#token={self.secret}"

    def claim(self) -> "Server":
        """Hold the data root, or raise AlreadyOpen naming the app that does (and let the port go)."""
        try:
            self.lock.acquire(self.origin)
        except Exception:
            self.httpd.server_close()
            raise
        return self

    def start(self) -> "Server":
        self.claim()
        self.runner.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="cllm-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.claim()
        self.runner.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.runner.shutdown()
            self.lock.release()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.runner.shutdown()
        if self._thread:
            self._thread.join(timeout=5)
        self.httpd.server_close()
        self.lock.release()
