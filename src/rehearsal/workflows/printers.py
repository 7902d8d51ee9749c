"""Did the printer itself receive the job? The plan's print witness says (``adapters.print_witness``).

The EHR's "skrivaren tog emot armbandet" is the sender's view; the clinical printing scenario
also asks the other end. *How* is the target's: the reference hospital lists what its simulated
printers took, a real printer answers by IPP, SNMP or ZPL (:mod:`rehearsal.adapters.print_witness`).

    witness = witness_for(plan)
    mark = witness.mark(printer)
    …print…
    witness.confirm(printer, mark, expect_text, within_s) -> str   (what it said; AssertionError if not)
"""

from __future__ import annotations

from rehearsal.adapters.print_witness import PrintWitness
from rehearsal.plan import Plan


def witness_for(plan: Plan) -> PrintWitness:
    """The print witness the plan names (``environment.adapters.print_witness``, default reference)."""
    return plan.environment.adapter("print_witness")(plan)
