"""GNU Health 5.0's web client (SAO) as the ``gnuhealth`` web_ui adapter (worked example in docs/targets.md).

``sao`` holds the few SAO widgets every GNU Health screen is made of; ``adapter`` puts GNU Health's
screens behind :mod:`rehearsal.pages.web_ui`, in GNU Health's own (English) words.
"""

from rehearsal.pages.gnuhealth.adapter import GnuHealthWebUi

__all__ = ["GnuHealthWebUi"]
