"""Service mode: long-lived worker loops that take jobs, with heartbeats, health and a gate."""
