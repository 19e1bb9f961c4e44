"""cgroup drivers (v1, v2 and the v1+v2 hybrid) behind one interface."""

from .base import CgroupDriver, CgroupError, CgroupGroup, CgroupLimits
from .detect import CgroupLayout, detect_driver, driver_from_layout, read_layout
from .v1 import V1Driver, V1Group
from .v2 import V2Driver, V2Group

__all__ = [
    "CgroupDriver",
    "CgroupError",
    "CgroupGroup",
    "CgroupLayout",
    "CgroupLimits",
    "V1Driver",
    "V1Group",
    "V2Driver",
    "V2Group",
    "detect_driver",
    "driver_from_layout",
    "read_layout",
]
