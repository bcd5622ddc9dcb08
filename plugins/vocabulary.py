"""The stock vocabulary: charge statuses (004), charge kinds and unearned types (002).

Statuses are data the practice system supplies; this plugin declares the
stock ones so that ``paysplit check`` can type-check ``where status = ...``.
A practice system with other statuses ships a plugin that declares them.
"""

from __future__ import annotations

from paysplit import hookimpl
from paysplit.phrases import Vocabulary


@hookimpl
def paysplit_vocabulary() -> Vocabulary:
    return Vocabulary(
        statuses={
            "due_patient": "Balance due from the patient",
            "pending_patient": "Pending patient",
            "due_insurance": "Due from insurance",
            "pending_payer": "Pending payer",
            "collection": "At collection",
            "collection_agency": "With a collection agency",
        },
        kinds={
            "procedure": "A procedure, line item or invoice (the default)",
            "adjustment": "A positive unattached adjustment, which is production (002)",
        },
        unearned_types={
            "prepayment": "Money paid before the work it pays for (the default)",
            "copay": "A copay collected ahead of the visit",
            "overpayment": "Money paid beyond what was owed",
        },
    )
