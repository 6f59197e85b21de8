"""`recforge ui`: the Studio, pages over run directories, a model stream, a live service and a pipeline root."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from recforge.cli.app import app
from recforge.studio.settings import TOKEN_ENV


@app.command()
def ui(
    runs: Path | None = typer.Option(None, help="Directory of run directories (`recforge train --out` targets)."),
    stream: Path | None = typer.Option(None, help="Model stream directory (versions + LATEST)."),
    service: str | None = typer.Option(None, help="URL of the live `recforge serve`, e.g. http://127.0.0.1:8000."),
    pipeline: Path | None = typer.Option(None, help="Pipeline root holding history.jsonl."),
    recent: Path | None = typer.Option(None, help="Recent stream rows (Parquet/CSV) the features page compares."),
    admin_token_env: str = typer.Option(TOKEN_ENV, help="Environment variable holding the rollback admin token."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    port: int = typer.Option(8080, help="Port."),
) -> None:
    """Serve the Studio: runs, model stream (rollback needs the admin token), embeddings, features, try a user."""
    import uvicorn

    from recforge.serving.http.run import check_bindable
    from recforge.studio.app import create_studio
    from recforge.studio.service_client import ServiceClient
    from recforge.studio.settings import Studio

    for option, path in (("--runs", runs), ("--stream", stream), ("--pipeline", pipeline), ("--recent", recent)):
        if path is not None and not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint=option)
    token = os.environ.get(admin_token_env) or None
    client = ServiceClient(service) if service else None
    studio = Studio(runs, stream, client, pipeline, recent, token)
    check_bindable(host, port)
    rollback = "on" if token else f"off (set {admin_token_env})"
    typer.echo(f"recforge studio on http://{host}:{port} (rollback {rollback})")
    uvicorn.run(create_studio(studio), host=host, port=port, log_level="warning", access_log=False)
