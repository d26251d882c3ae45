"""A repository's Dockerfile read as the Docker engine (BuildKit) reads it.

The farm checks a repository's Dockerfile before building it: the images
the engine would pull against ``BINDER_ALLOWED_BASE_IMAGES``
(``workers/image_policy.py``), and the URLs it would download itself
(``workers/buildpacks/dockerfile.py``). So these modules must see the file
as BuildKit's parser does, however it is spelled. From the bottom up:

* ``lexer``: Go's whitespace, words with their quotes kept, and Docker's
  shell lexer (``ShellLexer``: quotes, escapes, ``$X``, ``${X:-word}``, ...);
* ``directives``: the parser directives at the top of the file;
* ``instructions``: lines into instructions (continuations, heredocs,
  flags), once for each *reading* of the file;
* ``images``: the images a file makes the engine pull (``pulled_images``);
* ``downloads``: the URLs its ``ADD`` lines make the engine download
  (``downloaded_sources``).

Where Docker versions differ (heredoc support, ``\\\\`` at a line end, which
directives end the directive block) every reading is parsed, and what any
of them finds counts. A spelling the farm cannot evaluate (a variable in
``--mount`` ``from=``, ``${X#pattern}`` in ``FROM``, a variable in an ``ADD``
source) is refused rather than guessed. Everything is a single pass per
reading: time grows linearly with the file (``bench/dockerfile_parse.py``).
"""

from __future__ import annotations


class DockerfileError(ValueError):
    """The Dockerfile cannot be checked; ``str()`` is a sentence for the user."""


class Refused(Exception):
    """This reading of the file fails in Docker too (so it pulls nothing)."""


class Uncheckable(Exception):
    """A variable form the farm does not evaluate."""


__all__ = ["DockerfileError", "Refused", "Uncheckable"]
