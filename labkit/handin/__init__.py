"""The hand-in and the grader: the report and its PDF, re-scoring and grading checkpoints, the limits a submitted
file must keep, and writing files so that nothing a student made is lost."""
