"""The in-process HTTP server: 127.0.0.1 only, a free port, a fresh secret per launch."""

import queue
import secrets
import threading

from werkzeug.serving import BaseWSGIServer

from cllm_app.api import create_app
from cllm_app.instance import InstanceLock
from cllm_app.jobs.runner import JobRunner
from cllm_app.services.studio import Studio

HOST = "127.0.0.1"
IDLE_THREAD_SECONDS = 60


class ThreadPoolWSGIServer(BaseWSGIServer):
    """Werkzeug's threaded server, with threads that serve one connection after another.

    Werkzeug closes every connection after one request, and its threaded server starts a new
    thread for each, so every request also opened a new SQLite connection (the store's are one
    a thread): half a millisecond of a request's two on a laptop, while the window polls. Here a
    thread that has served a connection waits for the next one (and keeps its store connection);
    one that waited IDLE_THREAD_SECONDS leaves. There is no limit: a reply or the change feed
    holds its thread for as long as it streams, and a request must never wait behind them."""

    multithread = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool_lock = threading.Lock()
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting = 0  # threads waiting for a connection, less the connections handed to them

    def process_request(self, request, client_address):
        with self._pool_lock:
            if self._waiting > 0:
                self._waiting -= 1
                self._handoff.put((request, client_address))
                return
        threading.Thread(target=self._serve_connections, args=(request, client_address), daemon=True,
                         name="cllm-http-connection").start()

    def _serve_connections(self, request, client_address) -> None:
        while True:
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
            with self._pool_lock:
                self._waiting += 1
            try:
                request, client_address = self._handoff.get(timeout=IDLE_THREAD_SECONDS)
            except queue.Empty:
                with self._pool_lock:
                    if self._waiting > 0:  # more threads wait than connections were handed out: leave
                        self._waiting -= 1
                        return
                request, client_address = self._handoff.get()  # one was handed to this thread just now


class Server:
    """Binds first (so the port is known before anyone is told the URL), then serves in a thread."""

    def __init__(self, studio: Studio, port: int = 0, for_window: bool = False):
        self.secret = secrets.token_urlsafe(32)
        self.app = create_app(studio, self.secret, for_window=for_window)
        self.httpd = ThreadPoolWSGIServer(HOST, port, self.app)
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
