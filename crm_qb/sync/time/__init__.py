"""Billable time (DESIGN §9): CRM activities with a duration and ``billable`` become QBO TimeActivity.

``apply`` applies activity hooks (updates, deletes, held time, billed time frozen), ``create`` creates time
exactly once in batches of 30, ``earlier`` reads the activities no hook brought (logged before a contact was linked
or before the connection), ``billing`` follows QBO's billing status by query, ``resolve`` decides the
customer, person and item, ``store`` keeps entries and user mappings, ``settings`` the per-connection settings,
``admin`` what the CLI and the console call. The panel and the JSON API read it in ``web/readmodels/time.py``.
"""
