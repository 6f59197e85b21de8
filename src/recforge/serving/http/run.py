"""Running the HTTP service under uvicorn: one worker in this process, or worker processes from the env."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recforge.config.serving import ServingConfig
from recforge.errors import ConfigError, EndpointError
from recforge.serving.http.app import CONFIG_ENV, MODEL_ENV, create_app, freeze_startup_heap
from recforge.serving.service import Service


def check_bindable(host: str, port: int) -> None:
    """Fail before the service is built and announced: uvicorn would only log errno 98 after the banner.

    The probe binds as uvicorn does (SO_REUSEADDR), so a port in TIME_WAIT passes and a listening one fails.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except socket.gaierror as exc:
        raise EndpointError(
            f"cannot resolve host {host!r}: {exc.strerror}\n  fix: --host 127.0.0.1 or 0.0.0.0"
        ) from None
    except OSError as exc:
        fix = "--port N or stop the other process" if exc.errno == errno.EADDRINUSE else "--host/--port N"
        raise EndpointError(f"cannot listen on {host}:{port}: {exc.strerror}\n  fix: {fix}") from None


def check_mountable(config: ServingConfig, mounts: Mapping[str, Any] | Sequence[str] | None) -> None:
    """Mounted apps need the single-worker server: worker processes are rebuilt from the environment."""
    if mounts and config.http.workers > 1:
        raise ConfigError(
            "http.workers",
            f"{', '.join(mounts)} can be mounted only in a single-worker server (workers is {config.http.workers})",
            fix="--set http.workers=1, or run `recforge ui` beside the service",
        )


def run_service(
    model: str | Path, service: Service, config: ServingConfig, mounts: Mapping[str, Any] | None = None
) -> None:
    """Serve until stopped; with workers > 1 each worker rebuilds the service from MODEL and the config.

    `mounts` (path -> ASGI app, e.g. the Studio) need the single-worker server: worker processes are
    rebuilt from the environment, which cannot carry an app.
    """
    import uvicorn

    options: dict[str, Any] = {"host": config.http.host, "port": config.http.port, "log_level": "warning"}
    if config.http.workers == 1:
        app = create_app(service, mounts)
        freeze_startup_heap()
        uvicorn.run(app, access_log=False, **options)
        return
    check_mountable(config, mounts)
    service.stop()
    os.environ[MODEL_ENV], os.environ[CONFIG_ENV] = str(Path(model).resolve()), config.model_dump_json()
    uvicorn.run(
        "recforge.serving.http.app:app_from_env", factory=True, workers=config.http.workers, access_log=False, **options
    )
