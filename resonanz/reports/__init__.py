"""Reports for supervisors and admins (see docs/reports.md)."""
