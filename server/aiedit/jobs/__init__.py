"""Jobs: the queue interface and its implementations, the runner, and change events."""
