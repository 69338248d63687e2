"""Secure aggregation (SecAgg+): the aggregator learns the sum of the parties' vectors, nothing else.

See ``fedcore.secagg.protocol`` for the theory of operation (Bonawitz et al. CCS 2017 with the
sparse graph of Bell et al. CCS 2020).
"""

from fedcore.secagg.aggregator import AggregatorSession
from fedcore.secagg.client import ClientSession
from fedcore.secagg.driver import RoundStats, SecureSumResult, secure_sum
from fedcore.secagg.protocol import RoundSetup, Stage, make_setup

__all__ = [
    "AggregatorSession",
    "ClientSession",
    "RoundSetup",
    "RoundStats",
    "SecureSumResult",
    "Stage",
    "make_setup",
    "secure_sum",
]
