"""The party daemon: configuration, provisioning, policy, jobs and the operator control endpoint."""

from fedcore.party.config import PartyConfig, load_config
from fedcore.party.daemon import PartyDaemon
from fedcore.party.jobs import Job, JobState
from fedcore.party.policy import Policy
from fedcore.party.provision import load_federation, provision
from fedcore.party.tlscheck import verify_tls

__all__ = [
    "Job",
    "JobState",
    "PartyConfig",
    "PartyDaemon",
    "Policy",
    "load_config",
    "load_federation",
    "provision",
    "verify_tls",
]
