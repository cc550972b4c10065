"""Efros-Leung hole filling with the three constraints (the app's Complete page).

The engine is :class:`nps.sampler.Sampler` with the user's known pixels as the seed
region; this module is the public entry point.
"""

from nps.sampler import complete

__all__ = ["complete"]
