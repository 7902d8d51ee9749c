"""What the clinical and technical scenarios do, one workflow per module; steps stay a few lines.

- :mod:`routines`  which scenario applies at which site (the plan's local routines), and who
  is on the other side of the coexistence boundary for a site;
- :mod:`gate`      a per-site scenario is *blocked*, not failed, while a central system it
  needs does not answer (the central checks carry that failure); no writes to production;
- :mod:`window`    "during this rehearsal", on the target's clocks;
- :mod:`clinic`    web UI flows over the page objects: login (kept per site), waiting for a
  result, a referral or an answer to show;
- :mod:`people`    login and role per HSA-id through the FHIR API;
- :mod:`lab`       lab orders through the FHIR API and their results;
- :mod:`referrals` referral round trips across the boundary, both directions;
- :mod:`traffic`   the technical scenarios' test traffic, started once for every site in
  scope and run concurrently, so waits overlap;
- :mod:`printers`  did the printer itself receive the job.

Reconciliation (directory, migration) is :mod:`rehearsal.reconcile`; the test-identity guard
:mod:`rehearsal.guard`; byte-for-byte text comparison :mod:`rehearsal.fidelity`.
"""
