"""Read models of the web views: what the JSON API and the contact panel show of a contact's QuickBooks data.

``folder`` pages and filters a customer's folder items and turns them into JSON; ``summary`` computes the
Payment & Billing summary (and pushes it to CRMs that keep it natively). They only read, and they sit beside
the views that use them, not in the sync, which writes.
"""
