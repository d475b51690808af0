"""keyvault: per-subject data keys, wrapped by a master key, erasable for good.

It knows nothing about events; shredstore builds crypto-shredding on top of it.
"""

__all__: list[str] = []
