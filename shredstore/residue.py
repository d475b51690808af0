"""Moved to `shredstore.erasure.residue`; this alias goes once every caller imports from there."""

from shredstore.erasure.residue import *  # noqa: F403
