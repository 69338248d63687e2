"""The one native part: fedcore.crypto._mont (Montgomery products on GMP's mpn layer).

It is optional: where GMP's headers or a C compiler are missing the build skips it and
fedcore.crypto.montgomery falls back to gmpy2, with the same results (tests compare the
two). CI sets FEDCORE_REQUIRE_NATIVE=1 so that a skipped build fails the suite there.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "fedcore.crypto._mont",
            sources=["fedcore/crypto/_mont.c"],
            libraries=["gmp"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
