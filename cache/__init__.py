"""Prediction cache: one interface, SQL (prediction_cache table) and Redis backends."""
