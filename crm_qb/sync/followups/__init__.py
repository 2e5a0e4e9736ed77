"""Follow-ups: CRM tasks for overdue invoices, completed when the invoice no longer needs one (docs/architecture.md §4).

``service`` is what jobs and the CLI call; ``scan`` does one scan of one connection; ``tags`` keeps the overdue
tag; ``store`` is the SQL; ``settings`` validates the per-connection settings. The rules (which rule fires, why a
task closes, the task text) are pure, in ``crm_qb.sync.rules.followups``.

Decisions: an invoice gets a task for the most advanced rule it has reached and has not had yet, one at a time
(an invoice first seen 37 days overdue gets the 30-day task only, and the rules it skipped never fire, so a first
sync of a company with old invoices makes one task per overdue invoice, not one per rule); a task's due date is the
company's today; the contact tag is reconciled for every linked contact that has invoices (one GET each, a PATCH
only when the tag is wrong) when the connection enables it. An invoice moved to another customer completes its
tasks; its rows stay, so rules that already fired on the old contact do not fire again on the new one (later rules
do).
"""
