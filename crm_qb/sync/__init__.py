"""The sync: QBO customers and CRM contacts reconciled both ways, QBO transactions mirrored into the CRM.

- ``rules/``: pure functions (canonical form, mapping, merge, matching, money, status, folder fields, follow-up
  rules), tested without I/O;
- ``customers/``: linking and reconciling customers and contacts (identity, three-way merge over HTTP, merges,
  deletes, conflict review), and the link store;
- ``transactions/``: the registry of transaction types and the folder mirror;
- ``followups/``: CRM tasks for overdue invoices;
- ``pipeline/``: the inbound-event state machine and what feeds the capabilities: drains, the CDC poll, the
  backfill;
- ``context``, ``services``, ``settings``: one job's sync context, what the edge passes in, per-connection
  settings.
"""
