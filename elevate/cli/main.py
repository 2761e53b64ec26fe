"""The `elevate` command: api, worker, db, token, dev, policy, request, approve, reject."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from elevate.cli import people as people_cli
from elevate.cli.policy import app as policy_app
from elevate.settings import STATE_DIR, get_settings

if TYPE_CHECKING:
    from elevate.devstack.seed import DemoOrg


class ProviderName(StrEnum):
    identity_center = "identity_center"
    iam = "iam"


class _Elevate(typer.Typer):
    """Typer, except that what goes wrong around a command (no credentials, an endpoint that
    does not answer, a bad setting or catalog, AWS refusing) is one line and an exit code."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as err:
            from elevate.cli.errors import explain

            failure = explain(err)
            if failure is None:
                raise  # a bug: the traceback is what its report needs
            typer.echo(failure.line(), err=True)
            sys.exit(failure.code)


app = _Elevate(help="Temporary elevated access for AWS.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(people_cli.app, name="request")
app.command(epilog=people_cli.EXIT_CODES)(people_cli.approve)
app.command(epilog=people_cli.EXIT_CODES)(people_cli.reject)
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def api(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="ELEVATE_API_WORKERS",
            help="processes serving the port (one per core; each keeps its own caches)",
        ),
    ] = 1,
) -> None:
    """Run the REST API."""
    import uvicorn

    from api.main import create_app, served_app, tune_gc
    from elevate.logs import configure

    configure(get_settings())
    app = create_app()  # checks the provider's configuration against AWS, once
    if workers == 1:
        tune_gc()
        uvicorn.run(app, host=host, port=port, log_config=None)
    else:  # each process makes its own app (and checks again)
        if not get_settings().ui_session_secret:
            # One web session key for the processes, or a cookie signed by one is void at the
            # next: the processes inherit it from here (and it still ends with them).
            os.environ["ELEVATE_UI_SESSION_SECRET"] = secrets.token_urlsafe(32)
        factory = f"{served_app.__module__}:{served_app.__name__}"
        uvicorn.run(factory, factory=True, workers=workers, host=host, port=port, log_config=None)


@app.command()
def worker() -> None:
    """Run a Temporal worker (workflows and activities)."""
    import worker as worker_module
    from elevate.logs import configure

    configure(get_settings())
    asyncio.run(worker_module.run())


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Create or upgrade the database schema (ELEVATE_DATABASE_URL)."""
    from elevate.db import current_revision, make_engine, migrate

    engine = make_engine(get_settings().database_url)
    before = current_revision(engine)
    migrate(engine, revision)
    after = current_revision(engine)
    moved = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    typer.echo(f"database schema {moved} revision {after}")


@db_app.command()
def current() -> None:
    """Print the schema revision of the database and the one this elevate needs."""
    from elevate.db import current_revision, head_revision, make_engine

    have = current_revision(make_engine(get_settings().database_url))
    need = head_revision()
    typer.echo(f"database: {have or 'empty'}; this elevate needs: {need}")
    if have != need:
        raise typer.Exit(1)


@app.command()
def token(
    user: Annotated[str, typer.Argument(help="username, e.g. alice@example.com")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="a group claim (repeatable)")
    ] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 8 * 3600,
) -> None:
    """Mint a token signed with the dev stack's key (creates the key on first use)."""
    from elevate.devstack.keys import ensure_dev_key, mint_token

    s = get_settings()
    ensure_dev_key()
    typer.echo(
        mint_token(
            user,
            group or [],
            issuer=s.auth_issuer,
            audience=s.auth_audience,
            username_claim=s.auth_username_claim,
            groups_claim=s.auth_groups_claim,
            ttl_seconds=ttl,
        )
    )


@app.command()
def assignments(account_id: Annotated[str, typer.Argument(help="12-digit account id")]) -> None:
    """List who holds which permission set on an account, as AWS reports it."""
    from elevate.providers.factory import make_provider

    provider = make_provider(get_settings())
    for pset in provider.permission_sets():
        for principal in provider.holders(account_id, pset):
            typer.echo(f"{pset.name}\tUSER\t{principal}")


@app.command()
def dev(
    api_port: Annotated[int, typer.Option(help="API port")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal UI port")] = 8233,
    moto_port: Annotated[
        int, typer.Option(help="port of the moto server standing in for AWS")
    ] = 5000,
    provider: Annotated[
        ProviderName, typer.Option(help="grant through IAM Identity Center or plain IAM")
    ] = ProviderName.identity_center,
    slack: Annotated[
        bool, typer.Option(help="Slack approvals against a local stand-in of the Slack Web API")
    ] = False,
    slack_port: Annotated[int, typer.Option(help="port of the Slack stand-in; 0: any free")] = 0,
) -> None:
    """Run everything on this machine: Temporal dev server, emulated AWS, API and worker."""
    from elevate.devstack import processes
    from elevate.devstack.keys import ensure_dev_key, ensure_message_key
    from elevate.devstack.walkthrough import ENV_FILE, dev_env, dev_tokens, walkthrough, write_env

    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jwks = ensure_dev_key()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if processes.port_open("127.0.0.1", temporal_port):
            typer.echo(f"Temporal already answers on :{temporal_port}; using it")
        else:
            typer.echo(
                f"starting Temporal dev server on :{temporal_port} (UI http://localhost:{ui_port})"
            )
            procs.append(
                processes.start_temporal(
                    temporal_port, ui_port, STATE_DIR / "temporal.db", logs / "temporal.log"
                )
            )
        if processes.port_open("127.0.0.1", moto_port):
            raise typer.BadParameter(
                f"port {moto_port} is taken; pass --moto-port", param_hint="--moto-port"
            )
        typer.echo(f"starting moto (emulated AWS) on :{moto_port} and seeding a demo organization")
        procs.append(processes.start_moto(moto_port, logs / "moto.log"))
        aws = processes.aws_env(moto_port)
        os.environ.update(aws)
        org, provider_env = _seed(provider)
        env = {
            **aws,
            **provider_env,
            "ELEVATE_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
            "ELEVATE_AUTH_JWKS_URL": str(jwks.resolve()),
            "ELEVATE_AUTO_MIGRATE": "false",
            **_web_app_env(api_port),
            "ELEVATE_MESSAGE_KEY": os.environ.get("ELEVATE_MESSAGE_KEY") or ensure_message_key(),
        }
        if slack:
            from elevate.devstack.slack_standin import for_dev

            env.update(for_dev(f"http://127.0.0.1:{api_port}", slack_port))
            typer.echo(f"Slack stand-in: {env['ELEVATE_SLACK_API_URL'].removesuffix('api/')}")
        if processes.port_open("127.0.0.1", get_settings().worker_metrics_port):
            env["ELEVATE_WORKER_METRICS_PORT"] = "0"  # taken: run the worker without it
        typer.echo("upgrading the database schema (elevate db upgrade)")
        processes.run_elevate(["db", "upgrade"], env, logs / "migrate.log")
        procs.append(processes.start_elevate(["worker"], env, logs / "worker.log"))
        procs.append(
            processes.start_elevate(["api", "--port", str(api_port)], env, logs / "api.log")
        )
        base = f"http://127.0.0.1:{api_port}"
        processes.wait_until(lambda: processes.http_ok(f"{base}/readyz"), "the API", 60, procs[-1])
        tokens = dev_tokens()
        write_env(ENV_FILE, dev_env(base, aws, org.accounts, tokens, provider_env))
        typer.echo(walkthrough(base, org, ui_port, logs, provider_env, tokens))
        _wait_for_signal(procs)
    finally:
        typer.echo("stopping the dev stack")
        processes.stop(procs)


def _seed(provider: ProviderName) -> tuple[DemoOrg, dict[str, str]]:
    """Seed emulated AWS for the provider; the environment the API and worker need for it."""
    if provider is ProviderName.iam:
        from elevate.devstack.seed_iam import seed_iam_demo

        catalog = (STATE_DIR / "iam-catalog.yaml").resolve()
        org = seed_iam_demo(catalog)
        typer.echo(f"IAM catalog written to {catalog}")
        return org, {"ELEVATE_PROVIDER": "iam", "ELEVATE_IAM_CATALOG": str(catalog)}
    from elevate.devstack.seed import seed_demo

    return seed_demo(), {}


def _web_app_env(api_port: int) -> dict[str, str]:
    """The web app on the dev stack: signed in by picking a demo user (never in production)."""
    from elevate.devstack.seed import write_dev_users

    users = write_dev_users(STATE_DIR / "dev-users.yaml").resolve()
    return {
        "ELEVATE_UI_DEV_LOGIN": "true",
        "ELEVATE_UI_DEV_USERS": str(users),
        "ELEVATE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
    }


def _wait_for_signal(procs: list[subprocess.Popen[bytes]]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        typer.echo("a component of the dev stack exited; see .elevate/logs/", err=True)
    except KeyboardInterrupt:
        pass
