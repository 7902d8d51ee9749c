"""The lab's side of GNU Health for the tests: a lab technician who answers every new lab request.

In a hospital the lab takes a request, makes a lab test of it and enters the analytes' results;
here a thread does that through GNU Health's RPC as a user in GNU Health's "Health Lab" group,
the way its "Create Lab Test" wizard does (a ``gnuhealth.lab`` with the test type's analytes,
the request set to "Ordered"). The clinician then sees the result under "Lab: Results".
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from tests.gnuhealth.rpc import Rpc, RpcError

#: The value the lab reports per analyte code (inside the reference range: a normal result).
VALUES = {"CRP": 3.0, "Na": 140.0}


class LabTechnician:
    """Answers new requests every ``poll_s`` until stopped; ``answered`` counts what it did."""

    def __init__(self, rpc: Rpc, poll_s: float = 0.5) -> None:
        self.rpc = rpc
        self.poll_s = poll_s
        self.answered = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gnuhealth-lab", daemon=True)

    def start(self) -> LabTechnician:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.answer_new()
            except (RpcError, OSError) as exc:  # noted, and tried again at the next poll
                self.errors.append(str(exc))

    def answer_new(self) -> int:
        rpc = self.rpc
        new = rpc.search_read(
            "gnuhealth.patient.lab.test",
            [("state", "=", "draft")],
            ["test_type", "patient_id", "doctor_id", "request", "date"],
        )
        for request in new:
            analytes = rpc.search_read(
                "gnuhealth.lab.test.critearea",
                [("test_type_id", "=", request["test_type"])],
                ["name", "code", "units", "lower_limit", "upper_limit", "sequence"],
            )
            lines = [
                {
                    "name": a["name"],
                    "code": a["code"],
                    "units": a["units"],
                    "lower_limit": a["lower_limit"],
                    "upper_limit": a["upper_limit"],
                    "sequence": a["sequence"],
                    "result": VALUES.get(a["code"], 1.0),
                }
                for a in analytes
            ]
            now = datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
            rpc.create(
                "gnuhealth.lab",
                {
                    "test": request["test_type"],
                    "source_type": "patient",
                    "patient": request["patient_id"],
                    "requestor": request["doctor_id"],
                    "request_order": request["request"],
                    "date_requested": {"__class__": "datetime", **_parts(request["date"])}
                    if request["date"]
                    else None,
                    "date_analysis": {"__class__": "datetime", **_parts(now)},
                    "critearea": [["create", lines]],
                },
            )
            rpc.model("gnuhealth.patient.lab.test", "write", [request["id"]], {"state": "ordered"})
            self.answered += 1
        return len(new)


def _parts(value: object) -> dict[str, int]:
    """Tryton's JSON datetime from what search_read returned (a dict) or an ISO string."""
    if isinstance(value, dict):
        return {k: int(v) for k, v in value.items() if k != "__class__"}
    moment = datetime.fromisoformat(str(value))
    return {
        "year": moment.year,
        "month": moment.month,
        "day": moment.day,
        "hour": moment.hour,
        "minute": moment.minute,
        "second": moment.second,
        "microsecond": 0,
    }
