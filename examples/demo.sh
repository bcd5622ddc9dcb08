#!/usr/bin/env bash
# `make demo`: the main job on the bundled example ledger, step by step.
# John Smith pays 175.00 at the front desk; the practice's Apply Automatically
# rule (charges DUE PATIENT, oldest first, leftover as an account credit)
# decides where it goes, and says why for every charge it did not pay.
set -euo pipefail
cd "$(dirname "$0")/.."

paysplit=.venv/bin/paysplit
ledger=examples/ledgers/smith_family.json
rules=rules/apply_automatically.rules
out=build/demo
mkdir -p "$out"

step() {
    printf "\n== %s\n$ paysplit %s\n" "$1" "${*:3}"
    "${@:2}"
}

step "Validate the bundled ledger" "$paysplit" validate --ledger "$ledger"
step "Check the stock rule files" "$paysplit" check rules/*.rules
step "Balances before (DrChrono's dashboard, per patient)" \
    "$paysplit" balances --ledger "$ledger" --account SMITH
step "Post John's 175.00 payment and apply 'due_patient', explained" \
    "$paysplit" post-payment --ledger "$ledger" --rules "$rules" --rule due_patient \
    --payment '{"id": "PAY9", "patient": "P1", "payer": "patient", "provider": "DR1", "office": "MAIN", "date": "2025-03-01", "method": "card", "amount": "175.00"}' \
    --explain --out "$out/smith_after.json"
step "Balances after" "$paysplit" balances --ledger "$out/smith_after.json" --account SMITH
step "Per provider, after (Oasis' table)" \
    "$paysplit" balances --ledger "$out/smith_after.json" --account SMITH --by provider
step "Aged debtors with unallocated credit, after" "$paysplit" aging --ledger "$out/smith_after.json"
printf '\nThe new ledger (with its history entry) is %s.\n' "$out/smith_after.json"
