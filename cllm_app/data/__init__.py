"""Turning outside material (files, web pages) into plain training text; no Flask, no store."""
