"""How the farm's own commands report a failure: what happened, then what to do, as
click prints an error (``Error: ...``, exit 1), never as a traceback."""

from __future__ import annotations

from collections.abc import Callable

import click

from common.config import Config
from common.errors import BinderError


def click_error(exc: BinderError) -> click.ClickException:
    """The farm's error as the command line reports it: what happened, then what to do."""
    return click.ClickException(f"{exc.message} ({'; '.join(exc.suggestions)})")


def make_base_image(config: Config, say: Callable[[str], None],
                    image: str | None = None) -> str:
    """``ensure_base_image``, its failures a ``click.ClickException`` naming the Docker
    engine (``DOCKER_HOST``) or the registry that failed it."""
    import docker.errors
    import requests

    from workers.base_image import ensure_base_image

    engine = config.docker_host
    try:
        return ensure_base_image(config, say=say, image=image)
    except docker.errors.APIError as exc:
        raise click.ClickException(f"The Docker engine at {engine} refused to make the base "
                                   f"image: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        # The SDK asks the engine its version as the client is made: nothing answered.
        raise click.ClickException(
            f"The Docker engine at {engine} does not answer, so the base image cannot be "
            f"made ({exc}). (Is the engine running? Check DOCKER_HOST.)") from exc
    except requests.RequestException as exc:
        raise click.ClickException(
            f"The registry {config.registry} or the Docker engine at {engine} stopped "
            f"answering while the base image was made ({exc}). (Are they running? Check "
            "BINDER_REGISTRY and DOCKER_HOST.)") from exc
    except BinderError as exc:
        raise click_error(exc) from exc
