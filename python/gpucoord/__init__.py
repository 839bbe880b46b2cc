"""gpucoord - a standard-library-only Python client for the gpucoord GPU memory
coordinator (gpucoordd).

    import gpucoord
    client = gpucoord.Client()                      # $GPUCOORD_URL, $GPUCOORD_TOKEN
    with client.lease("20Gi", holder="flux") as lease:
        run_generation()                            # the memory is yours here

See docs/python.md.
"""
from .client import DEFAULT_URL, THIS_PROCESS, VERSION, Client, Lease
from .errors import (BadRequest, Conflict, CoordinatorUnavailable, CouldNotFree,
                     DemandTimeout, GpucoordError, LeaseLost, LeaseTimeout, LimitReached,
                     NeverFits, NotFound, Unauthorized, Unavailable, WaitTimeout)
from .resident import Resident
from .seed import SeedServer
from .sizes import SIZE_MAX, format_size, parse_size

__version__ = VERSION

__all__ = [
    "Client", "Lease", "Resident", "SeedServer", "parse_size", "format_size", "SIZE_MAX", "DEFAULT_URL",
    "THIS_PROCESS", "GpucoordError", "BadRequest", "Unauthorized", "NotFound", "Conflict",
    "NeverFits", "LimitReached", "CouldNotFree", "Unavailable", "CoordinatorUnavailable",
    "WaitTimeout", "LeaseTimeout", "DemandTimeout", "LeaseLost", "__version__",
]
