"""Moved to `shredstore.erasure.scrubbing`; this alias goes once every caller imports from there."""

from shredstore.erasure.scrubbing import *  # noqa: F403
