"""R, chosen as repo2docker chooses it: ``runtime.txt`` ``r-[X.Y-]YYYY-MM-DD`` or a
``DESCRIPTION`` file (``install.R`` alone does not select R).

R and IRkernel come from Debian (``r-base-core``, ``r-cran-irkernel``; R
4.2), installed as root with the kernel registered as ``ir``. Packages
come from ``BINDER_CRAN_URL``, a CRAN-like repository: its ``{date}`` is
runtime.txt's date (a dated snapshot) or ``latest``. The site library
belongs to the image user, so ``install.R`` (run as that user) and
``postBuild`` can install into it.

``install.R`` runs from ``REPO_DIR`` (again once the repository is copied
when it needs its files, as in repo2docker), with the farm's repository in
place of any it names
(``install.packages(..., repos = ...)``, ``options(repos = ...)``), as
pip and conda files get the farm's index and channels; ``repos = NULL``
(installing a local file) stays.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import PurePosixPath

from common.config import Config
from common.errors import BuildFailure
from common.models import FailureCause
from workers.buildpacks.base import BuildInputs, BuildPack, Install, staged
from workers.buildpacks.installers import apt_install

R_PACKAGES = ("r-base-core", "r-cran-irkernel")
SITE_LIBRARY = "/usr/local/lib/R/site-library"
RPROFILE = "/etc/R/Rprofile.site"
#: Left by ``install.R`` when it finished before the repository was copied.
INSTALL_R_DONE = staged("install.R.done")
#: Packages that come with R itself.
BASE_PACKAGES = frozenset({
    "R", "base", "compiler", "datasets", "grDevices", "graphics", "grid", "methods",
    "parallel", "splines", "stats", "stats4", "tcltk", "tools", "utils"})
_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")
_FIELD = re.compile(r"^([A-Za-z/@]+):\s*(.*)$")
#: ``repos =`` (or R's partial ``repo =``) and what follows, up to the end of its call.
#: A ``c(...)`` vector closes within 1000 characters: read to the end of the file from
#: every unclosed one, a megabyte of them took over a minute.
_REPOS = re.compile(r"\brepos?\s*=(?!=)\s*(c\s*\([^)]{0,1000}\)|\"[^\"]*\"|'[^']*'|[^,)\s]+)")
_STRING = re.compile(r"\"([^\"]*)\"|'([^']*)'")
#: R run before ``install.R``: every ``install.packages`` call (bare or ``utils::``, also
#: from packages loaded later) gets the farm's repository, whatever repos it names;
#: ``repos = NULL`` (a local file) stays. The farm's repository is the site profile's.
FARM_REPOS_PRELUDE = (
    'local({ farm <- getOption("repos"); original <- utils::install.packages; '
    "forced <- function(...) { args <- list(...); given <- names(args); "
    "hit <- if (is.null(given)) integer(0) else "
    'which(nzchar(given) & startsWith("repos", given)); '
    "if (length(hit) && is.null(args[[hit[1]]])) return(invisible(original(...))); "
    "if (length(hit)) args <- args[-hit]; "
    "invisible(do.call(original, c(args, list(repos = farm)))) }; "
    'for (env in list(as.environment("package:utils"), asNamespace("utils"))) { '
    'unlockBinding("install.packages", env); assign("install.packages", forced, envir = env); '
    'lockBinding("install.packages", env) } })'
)


def cran_url(config: Config, date: str | None) -> str:
    return str(config.cran_url).replace("{date}", date or "latest").rstrip("/")


def r_system(config: Config, date: str | None) -> list[str]:
    """Lines (as root) installing R and IRkernel and pointing R at the CRAN repository."""
    profile = f"local(options(repos = c(CRAN = '{cran_url(config, date)}')))"
    uid = config.nb_uid
    return [
        apt_install(R_PACKAGES) + " && "
        # HOME=/root: jupyter would otherwise leave root-owned files in the user's home
        "HOME=/root R --quiet --no-save -e \"IRkernel::installspec(user = FALSE)\" && "
        f"echo {shlex.quote(profile)} >> {RPROFILE} && "
        f"install -d -o {uid} -g {uid} {SITE_LIBRARY} && chown {uid}:{uid} {SITE_LIBRARY}",
    ]


def declared_repos(text: str) -> list[str]:
    """The package repositories an R script names with ``repos =`` (not ``NULL``)."""
    found: list[str] = []
    for match in _REPOS.finditer(text):
        value = match.group(1).strip()
        if value == "NULL":
            continue
        strings = [a or b for a, b in _STRING.findall(value)]
        for source in strings or [value]:
            if source and source not in found:
                found.append(source)
    return found


def _rscript_install_r(script: str) -> str:
    """``Rscript`` running the R script ``script`` (a path the farm chose, in R's double
    quotes) with the farm's repository in place of any it names."""
    return f"Rscript -e {shlex.quote(f'{FARM_REPOS_PRELUDE}; source({json.dumps(script)})')}"


def install_r_steps(config: Config, path: PurePosixPath) -> tuple[list[str], list[str]]:
    """(lines before the repository is copied, lines once it is there) running the
    repository's ``install.R`` at ``path``, from ``REPO_DIR`` as in repo2docker.

    It runs first with only itself staged, so that a code-only change reuses its layer;
    when that fails (it sources or installs a file of the repository), it runs again
    once the repository is copied, and that run's error fails the build.
    """
    uid, repo = config.nb_uid, config.repo_path
    again = ("install.R did not finish before the repository was copied; "
             "it runs again once the repository is there.")
    before = [f"COPY --chown={uid}:{uid} repo/{path} {staged('install.R')}",
              f"RUN cd {repo} && {_rscript_install_r(staged('install.R'))} && "
              f"touch {INSTALL_R_DONE} || echo {shlex.quote(again)}"]
    after = [f"RUN if [ -e {INSTALL_R_DONE} ]; then rm {INSTALL_R_DONE}; else "
             f"{_rscript_install_r(str(path))}; fi"]
    return before, after


def check_cran_url(config: Config) -> None:
    url = cran_url(config, "2000-01-01")
    if not re.match(r"^https?://[A-Za-z0-9.:\[\]_/@%+~-]+$", url) or "'" in url:
        raise BuildFailure(f"BINDER_CRAN_URL is not an http(s) URL: {url[:100]}",
                           cause=FailureCause.FARM)


def description_dependencies(text: str) -> list[str]:
    """The packages a DESCRIPTION's Depends, Imports and LinkingTo name (not R's own)."""
    fields: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line[:1].isspace() and current:
            fields[current] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        current = match.group(1) if match else None
        if match:
            fields[match.group(1)] = match.group(2)
    names = []
    for field in ("Depends", "Imports", "LinkingTo"):
        for item in fields.get(field, "").split(","):
            name = item.split("(")[0].strip()
            if not name or name in BASE_PACKAGES:
                continue
            if not _PACKAGE.match(name):
                raise BuildFailure(f"DESCRIPTION: `{name[:60]}` in {field} is not an R "
                                   "package name.")
            if name not in names:
                names.append(name)
    return names


def install_packages(names: list[str]) -> str:
    """R code installing ``names`` that are missing, failing when one does not install."""
    listed = ", ".join(f'"{name}"' for name in names)
    return (f"pkgs <- c({listed}); need <- setdiff(pkgs, rownames(installed.packages())); "
            "if (length(need)) install.packages(need); "
            "missing <- setdiff(pkgs, rownames(installed.packages())); "
            'if (length(missing)) stop("could not install R packages: ", '
            'paste(missing, collapse = ", "))')


class DescriptionBuildPack(BuildPack):
    """An R package: its dependencies from CRAN, then the package itself."""

    id = "DESCRIPTION"
    config_file = "DESCRIPTION"

    def check(self, inputs: BuildInputs) -> None:
        description_dependencies(inputs.read())

    def install(self, inputs: BuildInputs) -> Install:
        names = description_dependencies(inputs.read())
        before = [f"RUN Rscript -e {shlex.quote(install_packages(names))}"] if names else []
        assert inputs.config_path is not None
        folder = str(inputs.config_path.parent)
        return Install(before_repo=before, after_repo=[f"RUN R CMD INSTALL {folder}"],
                       needs_r=True)
