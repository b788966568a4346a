"""Applying a trained or released model: prediction, explanation, export."""
