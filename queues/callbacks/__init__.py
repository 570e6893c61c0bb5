from ._all import *  # noqa
