"""The journeys, one module each; ALL lists every flow the engine can run."""

from flows import erase, family, help, own, professional, stop, victim, welcome
from helpline.flowkit import FlowSpec

ALL: tuple[FlowSpec, ...] = (
    welcome.FLOW,
    own.FLOW,
    family.FLOW,
    victim.FLOW,
    professional.FLOW,
    help.FLOW,
    erase.FLOW,
    stop.FLOW,
)
