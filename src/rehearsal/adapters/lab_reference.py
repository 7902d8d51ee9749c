"""The reference hospital's lab link: its network check (NMD^N02) over MLLP, acknowledged ``AA``.

The reference lab takes an NMD^N02 as its heartbeat (a real lab may refuse a message type it
has no use for, as hl7apy's server does with ``AR``: that is why this is the reference's own
contract). Its results go to the reference bridge (``environment.bridge_mllp``), which files
them in the new EHR, so this adapter does not read a result: the result's patient and time
are judged by tech-lab-results (``lab_route: bridge``), and ``@needs:lab`` (the lab's result
text) does not apply. :class:`rehearsal.adapters.lab.StandardsLab` sends a real order.
"""

from __future__ import annotations

import time

from rehearsal.adapters.lab import Exchange
from rehearsal.clients import hl7 as mllp
from rehearsal.plan import Plan, Site


class ReferenceLab:
    """``adapter(plan)``: the network check to ``environment.lab_mllp``."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @classmethod
    def missing(cls, plan: Plan) -> str | None:
        return (
            "referenslabbet skickar sina svar till bryggan (bridge_mllp), inte till repetitionen: "
            "svarens väg prövas i tech-lab-results"
        )

    @classmethod
    def endpoints(cls, plan: Plan) -> dict[str, str]:
        return {"lab_mllp": plan.environment.lab_mllp} if plan.environment.lab_mllp else {}

    def close(self) -> None:
        pass

    def exchange(self, site: Site) -> Exchange:
        uri, lab = self.plan.environment.lab_mllp, self.plan.coexistence.lab
        assert uri, "planen anger ingen environment.lab_mllp"
        control = f"REHEARSAL{int(time.time() * 1000)}"
        ping = "\r".join([
            f"MSH|^~\\&|REHEARSAL|{site.hsa_id}|{lab.application}|{lab.facility}|{mllp.timestamp()}||"
            f"NMD^N02^NMD_N02|{control}|P|{mllp.VERSION}|||AL|NE||UNICODE UTF-8",
            f"NCK|{mllp.timestamp()}",
        ])  # fmt: skip
        made = Exchange(f"labbsystemet ({uri})", control, ping)
        timeouts = self.plan.environment.timeouts
        started = time.monotonic()
        try:
            ack = mllp.send_message(uri, ping, timeouts.read, connect_timeout=timeouts.connect)
        except mllp.MllpError as exc:
            made.error = str(exc)
            return made
        made.seconds["kvittens"] = round(time.monotonic() - started, 3)
        made.ack, made.code, made.refers_to = str(ack), mllp.ack_code(ack), mllp.field(ack, "MSA", 2)
        made.refused = mllp.refusal(ack, made.where)
        return made
