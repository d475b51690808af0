"""The one compiled module, `shredstore.storage.native` (optional: without a C compiler the
library runs its Python originals; see docs/performance.md). Everything else is in
pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("shredstore.storage.native", ["shredstore/storage/native.c"],
                             optional=True)])
