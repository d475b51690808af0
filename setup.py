"""The compiled modules of the read path, `shredstore.storage.native` and
`shredstore.mapping.native` (optional: without a C compiler the library runs their Python
originals; see docs/performance.md). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("shredstore.storage.native", ["shredstore/storage/native.c"], optional=True),
    Extension("shredstore.mapping.native", ["shredstore/mapping/native.c"], optional=True),
])
