"""Build hook for the optional C accelerator; all metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsserver.protocol._speedups",
            sources=["wsserver/protocol/_speedups.c"],
            optional=True,  # no compiler: wsserver uses its pure-Python fallback
            extra_compile_args=["-O3"],
        )
    ]
)
