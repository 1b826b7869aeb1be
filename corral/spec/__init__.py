"""Wire and domain models: what a job, a task and an agent are, validated with pydantic."""
