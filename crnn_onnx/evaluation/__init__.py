"""Accuracy of a model on labelled crops: reading labelled sets, scoring, reporting."""
