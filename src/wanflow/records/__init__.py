"""What runs leave behind: run and batch records, the run history, the lockfile, request history, diffs, gc."""
