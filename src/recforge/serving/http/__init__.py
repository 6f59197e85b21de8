"""HTTP serving: the FastAPI app and the KServe v2 / TF-Serving codecs."""

from recforge.serving.http.app import create_app

__all__ = ["create_app"]
