"""QBO transactions mirrored into the contact's "QuickBooks Transactions" folder.

``registry`` is the one list of transaction types every layer reads; ``mirror`` stores a transaction as a folder
item (and refreshes date-dependent statuses). The column values and status rules are pure, in ``sync/rules``.
"""
