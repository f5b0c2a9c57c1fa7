"""The hand-in and the grader: the report and its PDF, grading, a submission's limits, and writes that lose nothing."""
