"""The Research tab's services: evaluate, compare, inspect, lineage and notes, one module each."""
