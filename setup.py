"""The compiled modules of the read path, `shredstore.storage.native` and
`shredstore.mapping.native` (optional: without a C compiler the library runs their Python
originals; see docs/architecture.md, "Native code"). Everything else is in pyproject.toml."""

from setuptools import Extension, setup


def _native(name: str) -> Extension:
    return Extension(f"shredstore.{name}.native", [f"shredstore/{name}/native.c"],
                     include_dirs=["shredstore"], depends=["shredstore/native_uuid.h"],
                     optional=True)


setup(ext_modules=[_native("storage"), _native("mapping")])
