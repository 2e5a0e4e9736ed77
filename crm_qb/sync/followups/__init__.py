"""Follow-ups: CRM tasks for overdue invoices, completed when the invoice no longer needs one (docs/architecture.md §4).

``service`` is what jobs and the CLI call; ``scan`` does one scan of one connection; ``tags`` keeps the overdue
tag; ``store`` is the SQL; ``settings`` validates the per-connection settings. The rules (which rule fires, why a
task closes, the task text) are pure, in ``crm_qb.sync.rules.followups``.

Decisions: every rule that has fired gets its task (an invoice first seen 30 days overdue gets the 1-, 14- and
30-day tasks at once); a task's due date is the company's today; the contact tag is reconciled for every linked
contact that has invoices (one GET each, a PATCH only when the tag is wrong) when the connection enables it. An
invoice moved to another customer completes its tasks; its rows stay, so rules that already fired on the old
contact do not fire again on the new one (later rules do).
"""
