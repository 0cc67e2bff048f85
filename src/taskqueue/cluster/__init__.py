"""Many machines on one store: node registry, autoscaling, priority aging, leader-only chores."""
