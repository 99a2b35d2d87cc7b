"""Quality inspection (质检): which sessions are reviewed, the checklist, the review queue."""
