"""Customers both ways: a QBO customer and a CRM contact linked, matched before any write, and reconciled.

``qbo_side`` applies changed QBO customers (and QBO merges) to the CRM, ``crm_side`` applies CRM contact events
to QBO, ``identity`` finds candidates for an unlinked record, ``reconcile`` merges one linked pair over HTTP,
``links`` stores links and outcomes, ``conflict_review`` confirms or flips a decided conflict.
"""
