"""Run the review page with uvicorn on a free local port, in a thread, for tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class LiveServer:
    """`with LiveServer(db) as server:` serves `create_app(db)` at `server.url` until the block ends."""

    def __init__(self, db_path: Path, host: str = "127.0.0.1", **app_options) -> None:
        import uvicorn

        from promptkit.web import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))  # the kernel picks a free port; the app must know it for its Host check
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.app = create_app(db_path, host=host, port=self.port, **app_options)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review page did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
