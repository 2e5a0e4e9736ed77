"""Billable time (DESIGN §9): CRM activities with a duration and ``billable`` become QBO TimeActivity.

``apply`` applies activity hooks (created once, updated, deleted, held, billed time frozen), ``billing`` follows
QBO's billing status by query, ``resolve`` decides the customer, person and item, ``store`` keeps entries and
user mappings, ``settings`` the per-connection settings, ``admin`` what the CLI and the console call, ``views``
what the panel and the JSON API show.
"""
