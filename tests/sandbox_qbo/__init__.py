"""Tests of the local QuickBooks Online sandbox."""
