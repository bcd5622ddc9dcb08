"""``from appointment credit`` (000): an appointment's unallocated payment pays its charges.

DrChrono lets a patient pay against an appointment that has no charges yet;
the payment waits as the appointment's unallocated payment and is posted
against the charges as soon as they are added. In an ``on charge added``
rule this source takes the unallocated payments attached to the posted
charge's appointment, and pays only that appointment's charges. Applied to
a payment directly, it uses that payment's own appointment.
"""

from __future__ import annotations

from collections.abc import Sequence

from paysplit import hookimpl
from paysplit.ledger import Payment
from paysplit.phrases import Arguments, Phrase
from paysplit.policy import Source, SourceRequest, Target


def _appointment(request: SourceRequest) -> str | None:
    if request.charge is not None:
        return request.charge.appointment
    if request.payment is not None:
        return request.payment.appointment
    return None


class AppointmentCredit(Source):
    pooled = True

    def credit(self, request: SourceRequest) -> Sequence[Payment]:
        appointment = _appointment(request)
        if appointment is None:
            return ()
        waiting = [
            (payment.date, position, payment)
            for position, payment in enumerate(request.account.payments)
            if payment.appointment == appointment
            and request.figures.credit_due_to_patient(payment) > 0
        ]
        waiting.sort(key=lambda entry: (entry[0], entry[1]))
        return [payment for _, _, payment in waiting]

    def skip_reason(self, target: Target, request: SourceRequest) -> str | None:
        appointment = _appointment(request)
        if appointment is None:
            return "there is no appointment whose unallocated payment could pay it"
        if target.charge.appointment != appointment:
            return f"{target.charge.id} is not a charge of appointment {appointment}"
        return None


def _build(_arguments: Arguments) -> AppointmentCredit:
    return AppointmentCredit()


@hookimpl
def paysplit_phrases() -> list[Phrase]:
    return [
        Phrase(
            pattern="appointment credit",
            kind="source",
            build=_build,
            summary="The unallocated payments attached to an appointment pay that "
            "appointment's charges once it has some (000).",
            example="on charge added, from appointment credit",
        )
    ]
