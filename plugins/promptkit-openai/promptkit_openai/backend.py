"""The OpenAI-compatible Images backend: one ``POST {base}/images/generations`` per image (standard library HTTP).

Failures are one line each and never name the key: 401/403 stop at once; 429 waits for
``Retry-After`` (at most MAX_WAIT seconds) and 500-class answers and timeouts back off, each up to
``PROMPTKIT_OPENAI_RETRIES`` tries. An image reaches the library only when its whole answer has
arrived and decoded (promptkit writes the PNG, then the row), so a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from promptkit.engine.backend import BatchResult, EngineOptions
from promptkit.errors import BadParameter, ModelProblem, PromptkitError

from . import __version__

SCHEME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_SIZE = 1024
MAX_WAIT = 60.0  # the longest Retry-After honoured, in seconds
UNSUPPORTED = ("init_image", "mask", "loras", "controlnets", "refiner")


class OpenAIProblem(PromptkitError):
    """The Images API refused or failed a request (one line, without the key)."""


def _env(*names: str, default: str | None = None) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), default)


def model_name(model: str) -> str:
    name = model.split(":", 1)[1].strip() if ":" in model else ""
    if not name:
        raise ModelProblem(f"model {model!r}: give the API's model name after the scheme, e.g. openai:gpt-image-1")
    return name


class OpenAIImages:
    """A `promptkit.engine.backend.Backend` on an OpenAI-compatible Images API; it takes no seed."""

    family = "openai"
    load_seconds = 0.0

    def __init__(self, model: str, options: EngineOptions | None = None) -> None:
        self.model = model
        self.name = model_name(model)
        self._key  # refuse a missing key before any work

    # The settings are read from the environment at each request (a loaded backend stays cached),
    # and the key is never kept on the object.
    @property
    def base_url(self) -> str:
        return (_env("PROMPTKIT_OPENAI_BASE_URL", "OPENAI_BASE_URL", default=DEFAULT_BASE_URL) or "").rstrip("/")

    @property
    def _key(self) -> str:
        key = _env("PROMPTKIT_OPENAI_API_KEY", "OPENAI_API_KEY")
        if not key:
            raise ModelProblem(f"model {self.model!r} needs an API key: set OPENAI_API_KEY "
                               "(or PROMPTKIT_OPENAI_API_KEY)")
        return key

    @property
    def timeout(self) -> float:
        return float(_env("PROMPTKIT_OPENAI_TIMEOUT", default="120"))

    @property
    def retries(self) -> int:
        return max(1, int(_env("PROMPTKIT_OPENAI_RETRIES", default="3")))

    @classmethod
    def load(cls, model: str, options: EngineOptions | None = None) -> "OpenAIImages":
        return cls(model, options)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIImages({self.model!r}, base_url={self.base_url!r})"

    # -- the Backend interface ----------------------------------------------------------
    def check_request(self, extra: dict[str, Any]) -> None:
        for key in UNSUPPORTED:
            if extra.get(key):
                raise BadParameter(f"model {self.model!r} (an Images API) takes a prompt only, not `{key}`")

    def suggest_batch_size(self, params: Any, count: int) -> int:
        return 1  # one request per image: a failure costs one image, and every model accepts n=1

    def encode(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        return {"prompt": positive}

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "model_hash": "", "family": self.family, "device": "remote", "dtype": "",
                "versions": {"promptkit-openai": __version__}, "source": SCHEME, "reproducible": False}

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return False

    def free_memory(self) -> None:
        pass

    def run_batch(self, positive: str, negative: str, seeds: list[int], params: Any, profile: bool = False,
                  inputs: Any = None) -> BatchResult:
        """One image per seed; the seeds only number the replicates (the API takes none). The
        negative prompt is not sent: the Images API has no such field (the record keeps it)."""
        self.check_request(getattr(params, "extra", None) or {})
        self._key  # refuse a missing key before the first request
        width, height = params.width or DEFAULT_SIZE, params.height or DEFAULT_SIZE
        started = time.perf_counter()
        images = [self._image(positive, f"{width}x{height}") for _seed in seeds]
        seconds = time.perf_counter() - started
        width, height = images[0].size
        return BatchResult(images=images, seconds=seconds,
                           info={"width": width, "height": height, "mode": "txt2img", "prompt_mode": "plain",
                                 "timings": {"request": seconds}})

    # -- HTTP ---------------------------------------------------------------------------
    def _image(self, prompt: str, size: str):
        from PIL import Image

        body = {"model": self.name, "prompt": prompt, "n": 1, "size": size, "response_format": "b64_json"}
        answer = self._post("/images/generations", body)
        try:
            item = answer["data"][0]
            data = base64.b64decode(item["b64_json"]) if item.get("b64_json") else self._download(item["url"])
            image = Image.open(io.BytesIO(data))
            image.load()
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            raise OpenAIProblem(f"{self._where()}: the answer carries no readable image ({type(exc).__name__})") from None
        return image.convert("RGB")

    def _where(self) -> str:
        return f"model {self.model!r} at {self.base_url}"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self._key}"})
        for attempt in range(1, self.retries + 1):
            last = attempt == self.retries
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                wait = self._failed(exc, attempt, last)
            except (TimeoutError, socket.timeout) as exc:
                wait = self._timed_out(exc, last)
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    raise OpenAIProblem(f"{self._where()}: cannot connect ({exc.reason})") from None
                wait = self._timed_out(exc, last)
            except ValueError:
                raise OpenAIProblem(f"{self._where()}: the answer is not JSON") from None
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _timed_out(self, exc: BaseException, last: bool) -> float:
        if last:
            raise OpenAIProblem(f"{self._where()}: no answer within {self.timeout:g} s, {self.retries} tries "
                                "(PROMPTKIT_OPENAI_TIMEOUT sets the limit)") from None
        return 0.5

    def _failed(self, exc: urllib.error.HTTPError, attempt: int, last: bool) -> float:
        """Seconds to wait before trying again; raises for what a retry cannot fix, or on the last try."""
        message = _api_message(exc)
        message = message.replace(self._key, "***")  # some APIs quote the key they refused
        if exc.code in (401, 403):
            raise OpenAIProblem(f"{self._where()}: {exc.code} {message or 'unauthorized'}: check OPENAI_API_KEY "
                                "(or PROMPTKIT_OPENAI_API_KEY)") from None
        if exc.code == 429:
            wait = _retry_after(exc.headers.get("Retry-After"), attempt)
            if last or wait > MAX_WAIT:
                raise OpenAIProblem(f"{self._where()}: 429 rate limited{': ' + message if message else ''}; "
                                    f"gave up after {attempt} tries (Retry-After {exc.headers.get('Retry-After')})"
                                    ) from None
            return wait
        if exc.code >= 500 and not last:
            return min(0.5 * 2.0 ** (attempt - 1), MAX_WAIT)
        tries = f" after {attempt} tries" if exc.code >= 500 else ""
        raise OpenAIProblem(f"{self._where()}: {exc.code} {message or exc.reason}{tries}") from None

    def _download(self, url: str) -> bytes:
        # The image's own URL gets no Authorization header: the key goes to the API's host only.
        with urllib.request.urlopen(url, timeout=self.timeout) as response:
            return response.read()


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return max(0.0, float(value)) if value is not None else float(2 ** (attempt - 1))
    except ValueError:
        return float(2 ** (attempt - 1))  # an HTTP date: back off instead of parsing it


def _api_message(exc: urllib.error.HTTPError) -> str:
    """The API's own error message (`{"error": {"message": ...}}`), on one line, or ""."""
    try:
        data = json.loads(exc.read() or b"{}")
        text = str((data.get("error") or {}).get("message") or "")
    except (ValueError, AttributeError, OSError):
        text = ""
    return " ".join(text.split())[:200]
