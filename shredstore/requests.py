"""Moved to `shredstore.erasure.requests`; this alias goes once every caller imports from there."""

from shredstore.erasure.requests import *  # noqa: F403
