"""golive-rehearsal: dress-rehearsal harness for EHR go-lives."""
