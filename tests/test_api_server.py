"""The real server on a socket: 127.0.0.1 only, a fresh secret per launch, the guard in front."""

import http.client
import json

import pytest
import requests

from cllm_app.server import Server


@pytest.fixture
def server(studio):
    s = Server(studio).start()
    yield s
    s.stop()


def test_binds_loopback_on_a_free_port_with_a_fresh_secret(studio, server):
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/#token={server.secret}"
    other = Server(studio)
    try:
        assert other.secret != server.secret and other.port != server.port
    finally:
        other.httpd.server_close()


def test_api_round_trip_over_the_socket(server):
    h = {"X-CLLM-Token": server.secret}
    r = requests.post(server.origin + "/api/models", json={"model_name": "sock"}, headers=h, timeout=10)
    assert r.status_code == 201
    r = requests.get(server.origin + "/api/models", headers=h, timeout=10)
    assert [m["model_name"] for m in r.json()["models"]] == ["sock"]


def test_no_token_is_403(server):
    r = requests.get(server.origin + "/api/models", timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = requests.get(server.origin + "/api/models", headers={"X-CLLM-Token": "guess"}, timeout=10)
    assert r.status_code == 403


def test_cross_site_origin_is_403_even_with_the_token(server):
    h = {"X-CLLM-Token": server.secret, "Origin": "https://evil.example"}
    r = requests.post(server.origin + "/api/models", json={}, headers=h, timeout=10)
    assert r.status_code == 403
    h["Origin"] = server.origin
    assert requests.get(server.origin + "/api/models", headers=h, timeout=10).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost", "127.0.0.1", "rebind.attacker.test:{port}"])
def test_dns_rebinding_host_is_403(server, host):
    """A page on another name that resolves to 127.0.0.1 sends its own Host: refused."""
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    con.putrequest("GET", "/api/models", skip_host=True)
    con.putheader("Host", host.format(port=server.port))
    con.putheader("X-CLLM-Token", server.secret)
    con.endheaders()
    response = con.getresponse()
    assert response.status == 403
    assert json.loads(response.read())["error"]["code"] == "forbidden"


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_a_request_without_host_is_403(server, version):
    """werkzeug would otherwise take the bound address as the Host."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /api/models {version}\r\nX-CLLM-Token: {server.secret}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"403", head
    assert json.loads(body)["error"]["code"] == "forbidden"


def test_openai_key_and_launch_secret_each_open_only_their_routes(server, studio):
    key = studio.openai_key.get()
    assert requests.get(server.origin + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok
    assert requests.get(server.origin + "/api/models", headers={"X-CLLM-Token": key}, timeout=10).status_code == 403
    r = requests.get(server.origin + "/v1/models", headers={"Authorization": f"Bearer {server.secret}"}, timeout=10)
    assert r.status_code == 401


def test_concurrent_creates_of_one_name_give_one_model_and_one_conflict(server):
    from concurrent.futures import ThreadPoolExecutor

    h = {"X-CLLM-Token": server.secret}

    def create(_):
        return requests.post(server.origin + "/api/models", json={"model_name": "race"}, headers=h, timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(create, range(6)))
    assert codes == [201, 409, 409, 409, 409, 409]
    models = requests.get(server.origin + "/api/models", headers=h, timeout=10).json()["models"]
    assert [m["model_name"] for m in models] == ["race"]


def test_requests_one_after_another_reuse_one_thread_and_its_store_connection(server, studio):
    import threading

    from cllm_app.store import db

    h = {"X-CLLM-Token": server.secret}
    served, threads, connections = [], [], []

    def note_thread():
        served.append(1)
        thread = threading.current_thread()  # idents are reused once a thread ends; a mark is not
        if not getattr(thread, "_counted_by_test", False):
            thread._counted_by_test = True
            threads.append(thread.name)

    server.app.before_request(note_thread)
    requests.post(server.origin + "/api/models", json={"model_name": "m"}, headers=h, timeout=10)
    real = db.obj.connect

    def counting_connect(*args, **kwargs):
        connections.append(threading.get_ident())
        return real(*args, **kwargs)

    db.obj.connect = counting_connect
    try:
        for _ in range(20):
            assert requests.get(server.origin + "/api/models/m", headers=h, timeout=10).status_code == 200
    finally:
        db.obj.connect = real
    # Werkzeug closes each connection; the thread that served it waits for the next one (a
    # second one starts when the next request comes before the first is back waiting).
    assert len(served) == 21 and len(threads) <= 3
    assert len(connections) <= 3


def test_a_stream_holding_its_thread_never_makes_other_requests_wait(server, studio):
    h = {"X-CLLM-Token": server.secret, "Accept": "text/event-stream"}
    streams = [requests.get(server.origin + "/api/events", headers=h, stream=True, timeout=10) for _ in range(6)]
    try:
        for r in streams:
            assert r.status_code == 200
        for _ in range(10):
            r = requests.get(server.origin + "/api/models", headers={"X-CLLM-Token": server.secret}, timeout=10)
            assert r.status_code == 200
    finally:
        for r in streams:
            r.close()
