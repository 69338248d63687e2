"""The party daemon: configuration, provisioning, policy, job store, typed control plane, operator API."""

from fedcore.party.config import PartyConfig, load_config
from fedcore.party.daemon import PartyDaemon
from fedcore.party.jobs import Job, JobState
from fedcore.party.messages import Ok, Outcome, RemoteError
from fedcore.party.policy import Policy
from fedcore.party.provision import load_federation, provision
from fedcore.party.tlscheck import verify_tls

__all__ = [
    "Job",
    "JobState",
    "Ok",
    "Outcome",
    "PartyConfig",
    "PartyDaemon",
    "Policy",
    "RemoteError",
    "load_config",
    "load_federation",
    "provision",
    "verify_tls",
]
