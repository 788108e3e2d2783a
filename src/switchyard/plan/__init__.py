"""Work plans: partitioning, the WorkPlan model and its edits, graph rendering."""

from switchyard.plan.graph import plan_digraph, plan_dot
from switchyard.plan.planner import lower_bound, lpt, makespan, plan_partitions
from switchyard.plan.workplan import (
    SCHEMA_VERSION,
    PlannedPartition,
    WorkerSlot,
    WorkPlan,
    build_plan,
    plan_fingerprint,
    reassign,
    reassign_many,
    slot_host,
)

__all__ = [
    "SCHEMA_VERSION",
    "PlannedPartition",
    "WorkPlan",
    "WorkerSlot",
    "build_plan",
    "lower_bound",
    "lpt",
    "makespan",
    "plan_digraph",
    "plan_dot",
    "plan_fingerprint",
    "plan_partitions",
    "reassign",
    "reassign_many",
    "slot_host",
]
