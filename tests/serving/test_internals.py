"""What toxicity/serving/internals.py takes from LitServe's and uvicorn's private names is still there, in
the shape it uses: these fail on the LitServe or uvicorn release that changes one, before a server does."""

import inspect

import litserve as ls
from litserve.server import RegularRequestHandler
from uvicorn.protocols.http.h11_impl import H11Protocol

from toxicity.serving.internals import ToxicityServer, without_routes


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_request_handler_takes_a_request_and_its_type():
    assert parameters(RegularRequestHandler.__init__)[:3] == ["self", "lit_api", "server"]
    assert parameters(RegularRequestHandler.handle_request) == ["self", "request", "request_type"]
    assert inspect.iscoroutinefunction(RegularRequestHandler.handle_request)


def test_the_graceful_shutdown_we_replace_is_still_called_with_its_processes():
    assert parameters(ls.LitServer._perform_graceful_shutdown)[:3] == ["self", "manager", "uvicorn_workers"]
    assert "self._perform_graceful_shutdown(" in inspect.getsource(ls.LitServer)
    assert "self.inference_workers" in inspect.getsource(ls.LitServer)


class Echo(ls.LitAPI):
    def setup(self, device):
        pass

    def predict(self, x):
        return x


def test_litserve_still_adds_the_routes_ours_replace():
    server = ToxicityServer(Echo(), accelerator="cpu", shutdown_timeout=2.0)
    paths = {getattr(route, "path", None) for route in server.app.router.routes}
    assert {"/", "/predict"} <= paths and server.uvicorn_graceful_timeout == 2.0
    without_routes(server.app, {"/", "/predict"})
    assert not {"/", "/predict"} & {getattr(route, "path", None) for route in server.app.router.routes}


def test_uvicorns_h11_protocol_has_the_hooks_the_head_deadline_uses():
    hooks = ("connection_made", "data_received", "on_response_complete", "connection_lost")
    for method in (*hooks, "send_400_response", "_unset_keepalive_if_required"):
        assert callable(getattr(H11Protocol, method))
    assert parameters(H11Protocol.send_400_response) == ["self", "msg"]
    source = inspect.getsource(H11Protocol)
    for attribute in ("conn", "transport", "loop", "config", "timeout_keep_alive_task"):
        assert f"self.{attribute}" in source
