"""Exports of trained weights to other libraries' formats."""
