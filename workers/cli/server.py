"""The farm's own commands: run it locally, or each of its processes.

``up`` starts every component the configuration does not point elsewhere,
makes sure the base image exists, then runs the Procfile's processes under
honcho in the foreground (``workers/cli/procfile_runner.py``). Ctrl-C or
SIGTERM stops what it started, in reverse order, and nothing else; if
``up`` is killed instead, what it started gets SIGTERM, and the next ``up``
clears what is left (see ``workers/previous_run.py``). A process that exits
on its own stops the farm, and ``up`` exits 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import click

from common.api_keys import ensure_api_key, ensure_flower_password
from common.config import Config, describe_settings, environment_for, load_config
from common.db import prepare_store
from common.errors import BadDatabase, ConfigError, NoDatabase
from common.service_credentials import credentials_path, with_service_credentials
from workers.cli.failures import click_error, make_base_image
from workers.cli.procfile_runner import PROCESS_EXITED
from workers.launcher import ServiceError, ensure_services, stop_services
from workers.orphans import die_with_parent
from workers.previous_run import SERVICES, AlreadyRunning, RunFiles, detached_services

UP_PROCESSES = ("api", "worker", "beat", "flower")


def _load(config_file: str | None, *, api_key: bool = True, **overrides: Any) -> Config:
    """The configuration with the local services' credentials, and the API key (made and
    saved under the data dir when none is set) unless ``api_key`` is false: only the
    processes that serve or print the API need one, so a worker host keeps no unused secret."""
    try:
        config = load_config(config_file=config_file, **overrides)
    except ConfigError as exc:
        raise click_error(exc) from exc
    try:
        config.data_path.mkdir(parents=True, exist_ok=True)
        config = with_service_credentials(config)
        return config.replace(api_key=ensure_api_key(config)) if api_key else config
    except ConfigError as exc:
        raise click_error(exc) from exc
    except OSError as exc:  # the key and the credentials are kept in it
        raise click.ClickException(f"The data folder {config.data_path} (BINDER_DATA_DIR) "
                                   f"cannot be used: {exc.strerror or exc}.") from exc


def _child_env(config: Config) -> dict[str, str]:
    env = {**os.environ, **environment_for(config), "BINDER_DATA_DIR": str(config.data_path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


config_option = click.option("--config", "config_file", envvar="BINDER_CONFIG",
                             type=click.Path(dir_okay=False),
                             help="JSON or TOML config file (BINDER_CONFIG).")


def stopped_by_itself(status: int) -> None:
    """``up``'s processes stopped without being asked to: fail, so a supervisor notices."""
    if status == PROCESS_EXITED:
        raise click.ClickException("the farm stopped because one of its processes exited "
                                   "(named above); start it again with binder-build up")
    raise click.ClickException(f"the farm's processes stopped unasked (status {status}); "
                               "start it again with binder-build up")


def _prepare_store(config: Config) -> None:
    """The store's collections before the farm's processes start (see ``prepare_store``).

    A store that does not answer yet does not stop the farm: its processes
    create what they need once it does, as they do after an outage.
    """
    try:
        prepare_store(config)
    except (NoDatabase, BadDatabase) as exc:
        click.echo(f"store | WARNING: collections not prepared: {exc.message} The farm's "
                   "processes create them when the store answers.")
        return
    click.echo(f"store | collections and indexes of {config.mongo_db} ready")


@click.command()
@config_option
def up(config_file: str | None) -> None:
    """Run the whole farm locally in the foreground."""
    die_with_parent()  # get SIGTERM when make or the shell dies: nothing is left behind
    config = _load(config_file)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    run = RunFiles(config, say=lambda line: click.echo(f"previous run | {line}"))
    services = []
    honcho: subprocess.Popen[bytes] | None = None
    owned = False
    try:
        run.check_previous_up()
        run.record_up("running")
        owned = True
        run.stop_leftover_farm()
        services = ensure_services(config, detach=True, run=run)
        config = with_service_credentials(config)  # made if this started the services
        for service in services:
            click.echo(f"started {service.name} (pid {service.pid}, log {service.log_path})")
        _prepare_store(config)
        make_base_image(config, say=lambda line: click.echo(f"base-image | {line}"))
        click.echo(f"API  http://{config.host}:{config.port}/  (docs at /docs)")
        click.echo(f"key  {config.api_key}")
        click.echo(f"Flower  http://{config.host}:{config.flower_port}/  (user "
                   f"{config.flower_user}, password {ensure_flower_password(config)})")
        click.echo(f"service credentials  {credentials_path(config)}")
        with resources.as_file(resources.files("workers.cli") / "Procfile") as procfile:
            honcho = subprocess.Popen(
                [sys.executable, "-m", "workers.cli.procfile_runner", str(procfile),
                 *UP_PROCESSES],
                env=_child_env(config), start_new_session=True, preexec_fn=die_with_parent)
            run.record_farm(honcho.pid)
            stopped_by_itself(honcho.wait())
    except (ServiceError, ConfigError, AlreadyRunning) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("stopping the farm")
    finally:
        if owned:
            run.record_up("stopping")
        if honcho is not None and honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
            try:
                honcho.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
        stop_services(services)
        if owned:
            run.clear()


@click.command()
@config_option
@click.option("--base-image/--no-base-image", default=True, show_default=True,
              help="Also build the base image.")
@click.option("--stop", is_flag=True,
              help="Stop the services an earlier `binder-build services` started, instead.")
def services(config_file: str | None, base_image: bool, stop: bool) -> None:
    """Start the missing components detached (for CI and tests), then exit."""
    config = _load(config_file)
    started_here = detached_services(config, say=click.echo)
    if stop:
        stopped = [name for name in reversed(SERVICES)
                   if started_here.stop_service(name, "started by binder-build services")]
        click.echo(f"stopped {', '.join(stopped)}" if stopped else
                   "no service started by binder-build services runs")
        return
    try:
        started = ensure_services(config, detach=True)
        config = with_service_credentials(config)  # made if this started the services
    except (ServiceError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    for service in started:
        started_here.record_service(service.name, service.pid)
        click.echo(f"started {service.name} (pid {service.pid})")
    if started:
        click.echo(f"stop them with: binder-build services --stop (BINDER_DATA_DIR "
                   f"{config.data_path})")
    click.echo(f"service credentials: {credentials_path(config)}")
    if base_image:
        make_base_image(config, say=click.echo)


def _exec(argv: list[str], config: Config, **extra_env: str) -> None:
    os.execvpe(argv[0], argv, {**_child_env(config), **extra_env})


def api_workers(config: Config, cores: int | None = None) -> int:
    """``BINDER_API_WORKERS``, else gunicorn's rule for a CPU-bound app: two worker
    processes per core plus one (a worker waiting on MongoDB leaves its core to another)."""
    if config.api_workers > 0:
        return int(config.api_workers)
    return 2 * (cores or len(os.sched_getaffinity(0)) or 1) + 1


@click.command()
@config_option
def api(config_file: str | None) -> None:
    """Serve the API under gunicorn."""
    from api.request_metrics import MULTIPROC_ENV
    from workers.git import check_git_version

    config = _load(config_file)
    try:
        check_git_version()  # the API resolves refs with git
    except ConfigError as exc:
        raise click_error(exc) from exc
    # Request latencies of every gunicorn process, summed at /metrics; what a
    # previous run left there would be counted again. One folder per listening
    # port: another API on the same data folder must not empty this one's.
    metrics_dir = config.data_path / "api-metrics" / str(config.port)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    _exec(gunicorn_command(config), config, **{MULTIPROC_ENV: str(metrics_dir)})


def gunicorn_command(config: Config) -> list[str]:
    """The command line that serves the API under gunicorn."""
    # This interpreter's gunicorn, so the API runs the same install as this command.
    # No control socket: gunicorn's default is one path per user
    # (~/.gunicorn/gunicorn.ctl), so every farm on the machine would share it, and
    # `gunicornc` of one would act on another. The farm does not use it; signals
    # (HUP, TTIN, TTOU) reach the master by its pid.
    return [sys.executable, "-m", "gunicorn", "--bind", f"{config.host}:{config.port}",
            "--workers", str(api_workers(config)),
            "--threads", str(max(1, config.api_threads)), "--timeout", "120",
            "--access-logfile", "-", "--limit-request-line", "8190", "--no-control-socket",
            "--config", "python:api.gunicorn_config", "api:create_app()"]


@click.group(invoke_without_command=True)
@config_option
@click.option("--docker-host", metavar="URL",
              help="This host's Docker engine: unix:///PATH or tcp://HOST:PORT with TLS "
                   "[DOCKER_HOST].")
@click.option("--host-id", metavar="ID", help="This Docker host's id; its queue is host.ID "
                                              "[BINDER_WORKER_ID; default the hostname].")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Builds run at once [BINDER_WORKER_CONCURRENCY; default 1].")
@click.pass_context
def worker(ctx: click.Context, config_file: str | None, docker_host: str | None,
           host_id: str | None, concurrency: int | None) -> None:
    """Run a Celery worker for one Docker host (queues builds and host.<id>).

    `worker hosts` lists the Docker hosts; `worker drain HOST-ID` and `worker
    undrain HOST-ID` take a host out of service and back, through the API.
    """
    if ctx.invoked_subcommand is not None:
        _refuse_worker_options(ctx)
        return
    from common.docker_connection import check_engine_address, check_engine_reaches_registry
    from workers.git import check_git_version
    from workers.index_proxy import check_proxy_reachable
    from workers.queues import SHARED_QUEUE, check_host_id, host_queue

    overrides = {key: value for key, value in (("docker_host", docker_host),
                                               ("worker_id", host_id),
                                               ("worker_concurrency", concurrency))
                 if value is not None}
    config = _load(config_file, api_key=False, **overrides)
    try:
        host = check_host_id(config.worker_host)
        check_engine_address(config)
        check_engine_reaches_registry(config)
        check_proxy_reachable(config)
        check_git_version()
    except ConfigError as exc:
        raise click_error(exc) from exc
    _exec([sys.executable, "-m", "celery", "--quiet", "-A", "workers.worker_app", "worker",
           "--loglevel", "INFO", "-Q", f"{host_queue(host)},{SHARED_QUEUE}",
           "--hostname", f"{host}@%h", "--concurrency", str(config.worker_concurrency),
           "--without-mingle", "--without-gossip"],
          config.replace(worker_id=host))


def _refuse_worker_options(ctx: click.Context) -> None:
    """Refuse the worker's own options given before ``hosts``, ``drain`` or ``undrain``:
    those talk to the API, so ``worker --host-id A drain B`` would drop A unsaid."""
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(
                f"{param.opts[0]} is an option of the worker itself; binder-build worker "
                f"{ctx.invoked_subcommand} takes none of the worker's options (it asks the "
                "API, see its --help).", ctx=ctx)


@click.command()
@config_option
def beat(config_file: str | None) -> None:
    """Run Celery beat (the reaper and garbage collection)."""
    config = _load(config_file, api_key=False)
    schedule = config.data_path / "celerybeat-schedule"
    _exec([sys.executable, "-m", "celery", "--quiet", "-A", "workers.worker_app", "beat",
           "--loglevel", "INFO", "--schedule", str(schedule)], config)


@click.command()
@config_option
def flower(config_file: str | None) -> None:
    """Run Flower to watch the queue (BINDER_FLOWER_PORT), behind basic auth."""
    config = _load(config_file, api_key=False)
    password = ensure_flower_password(config)
    if "," in password or ":" in config.flower_user:
        raise click.ClickException("BINDER_FLOWER_PASSWORD may not hold a comma, nor "
                                   "BINDER_FLOWER_USER a colon (Flower splits on them).")
    # Flower reads its options from FLOWER_* variables too: the password stays off the
    # command line (ps). workers.flower_main is celery's command line with the farm's
    # log format set up first.
    _exec([sys.executable, "-m", "workers.flower_main", "-A", "workers.worker_app", "flower",
           f"--address={config.host}", f"--port={config.flower_port}"], config,
          FLOWER_BASIC_AUTH=f"{config.flower_user}:{password}")


@click.command("base-image")
@config_option
@click.option("--lock", is_flag=True,
              help="Re-pin the recipe's wheels (requirements.in to wheels.lock) instead.")
@click.option("--tag", default=None, help="Build and push under this image name instead.")
def base_image_command(config_file: str | None, lock: bool, tag: str | None) -> None:
    """Build and push the base image (and the Debian root) if the recipe changed."""
    from workers.base_image import write_lock

    if lock:
        if tag is not None:
            raise click.UsageError("--lock re-pins the recipe's wheels and builds no image: "
                                   "it takes no --tag.")
        write_lock(say=click.echo)
        return
    make_base_image(_load(config_file, api_key=False), say=click.echo, image=tag)


@click.command()
def settings() -> None:
    """List every setting: variable, default, meaning."""
    for env, default, help_text in describe_settings():
        click.echo(f"{env:32} {default!s:28} {help_text}")


COMMANDS = (up, services, api, worker, beat, flower, base_image_command, settings)
