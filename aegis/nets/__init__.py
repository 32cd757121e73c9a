"""Completeness nets under the observer.

Interception sees what it intercepts; these nets catch what it cannot:

- ``snapshot``: fingerprints of the writable roots at session start and end, diffed
  into "FileChange" records (flagged ``unobserved`` when the observer saw no write).
- ``landlock_audit``: Landlock's kernel denials, read from the audit netlink socket,
  recorded as "KernelDenial" events (or one note saying why they cannot be).
"""
