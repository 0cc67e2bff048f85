"""The job: its record, its states, its priority, its id, and how users define one."""
