"""Clusters and their worker environments: provisioning with uv, local and remote workers."""
