"""The local review page: a small ASGI app (FastAPI) over a promptkit library.

`create_app(db_path)` returns the app; `promptkit serve` runs it with uvicorn. Importing this
package never imports torch or diffusers: the page starts in a fraction of a second.
"""

from .app import create_app

__all__ = ["create_app"]
